"""The token bucket behind a provider's rate_per_s."""

from __future__ import annotations

import pytest

from mailbridge.delivery.ratelimit import TokenBucket


class TestTokenBucket:
    def test_unlimited(self) -> None:
        """rate 0 never makes anyone wait."""
        bucket = TokenBucket(0, now=0.0)
        assert all(bucket.take(100, 0.0) == 0.0 for _ in range(1000))

    def test_burst_then_wait(self) -> None:
        """A rested bucket gives one second's worth, then asks to wait 1/rate per token."""
        bucket = TokenBucket(10, now=0.0)
        assert [bucket.take(1, 0.0) for _ in range(10)] == [0.0] * 10
        assert bucket.take(1, 0.0) == pytest.approx(0.1)
        assert bucket.take(1, 0.05) == pytest.approx(0.05)
        assert bucket.take(1, 0.1) == 0.0

    @pytest.mark.parametrize(
        ("rate", "seconds", "expected"), [(5, 10, 55), (20, 3, 80), (1, 60, 61)]
    )
    def test_long_run_rate(self, rate: float, seconds: int, expected: int) -> None:
        """Stepping a fake clock, the bucket admits burst + rate x time tokens."""
        bucket = TokenBucket(rate, now=0.0)
        taken = 0
        steps = seconds * 100
        for step in range(steps + 1):
            now = step / 100
            while bucket.take(1, now) == 0.0:
                taken += 1
        assert abs(taken - expected) <= 1  # float steps may land a hair short

    def test_failed_take_takes_nothing(self) -> None:
        """A refused take leaves the tokens as they were."""
        bucket = TokenBucket(2, now=0.0)
        bucket.take(2, 0.0)
        assert bucket.take(1, 0.0) > 0
        assert bucket.tokens(0.0) == pytest.approx(0.0)

    def test_batch_larger_than_capacity_goes_into_debt(self) -> None:
        """A batch bigger than the bucket goes once full, and the debt is paid in time."""
        bucket = TokenBucket(10, now=0.0)
        assert bucket.take(50, 0.0) == 0.0
        assert bucket.tokens(0.0) == pytest.approx(-40.0)
        assert bucket.take(1, 0.0) == pytest.approx(4.1)
        assert bucket.take(1, 4.1) == 0.0

    def test_clock_going_back_is_ignored(self) -> None:
        """A time before the last one neither refills nor breaks the bucket."""
        bucket = TokenBucket(10, now=5.0)
        bucket.take(10, 5.0)
        assert bucket.take(1, 4.0) == pytest.approx(0.1)
