"""The retry decision: backoff with full jitter, Retry-After, permanent failures, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.retry import RetryAction, backoff_ceiling_s, decide, expires_at
from mailbridge.errors import PermanentProviderError, ProviderError, TemporaryProviderError
from mailbridge.models import SmsState
from mailbridge.settings import DeliverySettings

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = DeliverySettings(validity_s=86400, retry_first_s=2, retry_max_s=600)


def _const(value: float) -> Callable[[], float]:
    return lambda: value


class TestBackoffCeiling:
    @pytest.mark.parametrize(
        ("attempt", "ceiling"),
        [(0, 4.0), (1, 4.0), (2, 8.0), (3, 16.0), (8, 512.0), (9, 600.0), (50, 600.0)],
    )
    def test_doubles_then_caps(self, attempt: int, ceiling: float) -> None:
        """The ceiling starts at twice retry_first_s, doubles per attempt, stops at retry_max_s."""
        assert backoff_ceiling_s(attempt, SETTINGS) == ceiling

    def test_huge_attempt_does_not_overflow(self) -> None:
        """An absurd attempt number still gives the cap."""
        assert backoff_ceiling_s(10**9, SETTINGS) == 600.0


class TestDecide:
    @pytest.mark.parametrize(
        ("rng", "attempt", "gap"),
        [
            (0.5, 1, 2.0),  # mean of the first gap is retry_first_s
            (0.99, 1, 3.96),
            (0.0, 1, 0.2),  # floor: a tenth of retry_first_s
            (0.5, 3, 8.0),
            (0.999, 30, 599.4),
        ],
    )
    def test_temporary_retries_with_jitter(self, rng: float, attempt: int, gap: float) -> None:
        """A temporary error retries after rng x ceiling seconds (with the floor)."""
        d = decide(
            TemporaryProviderError("503"),
            attempt=attempt,
            now=T0,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(rng),
        )
        assert d.action is RetryAction.RETRY
        assert d.state is None
        assert d.at is not None
        assert (d.at - T0).total_seconds() == pytest.approx(gap)

    @pytest.mark.parametrize(
        ("retry_after", "gap"), [(30.0, 30.0), (0.5, 2.0), (3600.0, 3600.0), (None, 2.0)]
    )
    def test_retry_after_is_a_lower_bound(self, retry_after: float | None, gap: float) -> None:
        """Retry-After raises the gap (even past retry_max_s), never lowers it."""
        d = decide(
            TemporaryProviderError("429", retry_after_s=retry_after),
            attempt=1,
            now=T0,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert d.at is not None
        assert (d.at - T0).total_seconds() == pytest.approx(gap)

    @pytest.mark.parametrize("attempt", [1, 5, 100])
    def test_permanent_fails_at_once(self, attempt: int) -> None:
        """A permanent error fails whatever the attempt and time left."""
        d = decide(
            PermanentProviderError("credentials refused"),
            attempt=attempt,
            now=T0,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert d.action is RetryAction.FAILED
        assert d.state is SmsState.FAILED
        assert d.at is None

    def test_past_validity_expires(self) -> None:
        """An SMS past first_due + validity_s expires instead of retrying."""
        now = T0 + timedelta(seconds=86401)
        d = decide(
            TemporaryProviderError("timeout"),
            attempt=3,
            now=now,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert d.action is RetryAction.EXPIRED
        assert d.state is SmsState.EXPIRED

    def test_retry_landing_after_validity_expires_now(self) -> None:
        """A retry that would come after the validity ends expires the SMS at once."""
        short = DeliverySettings(validity_s=10, retry_first_s=2, retry_max_s=600)
        d = decide(
            TemporaryProviderError("429", retry_after_s=60),
            attempt=1,
            now=T0,
            first_due=T0,
            settings=short,
            rng=_const(0.5),
        )
        assert d.action is RetryAction.EXPIRED

    def test_plain_provider_error_is_temporary(self) -> None:
        """A bare ProviderError is treated as temporary."""
        d = decide(
            ProviderError("odd"), attempt=1, now=T0, first_due=T0, settings=SETTINGS, rng=_const(0)
        )
        assert d.action is RetryAction.RETRY

    def test_expires_at(self) -> None:
        """Validity counts from the request's first due time."""
        assert expires_at(T0, SETTINGS) == T0 + timedelta(days=1)

    @given(
        attempt=st.integers(min_value=1, max_value=200),
        draw=st.floats(min_value=0.0, max_value=0.999999),
        elapsed=st.floats(min_value=0.0, max_value=90000.0),
    )
    def test_retry_always_within_bounds(self, attempt: int, draw: float, elapsed: float) -> None:
        """Any retry is in the future, at most retry_max_s away, and before validity ends."""
        now = T0 + timedelta(seconds=elapsed)
        d = decide(
            TemporaryProviderError("x"),
            attempt=attempt,
            now=now,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(draw),
        )
        if d.action is RetryAction.RETRY:
            assert d.at is not None
            gap = (d.at - now).total_seconds()
            assert 0 < gap <= SETTINGS.retry_max_s
            assert d.at <= expires_at(T0, SETTINGS)
        else:
            assert d.action is RetryAction.EXPIRED
