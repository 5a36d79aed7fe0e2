"""The delivery side's clocks: the system's, a manual one, and what as_clock accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.delivery.clock import ManualClock, SystemClock, WallClock, as_clock, utcnow

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class TestManualClock:
    def test_stands_still_until_advanced(self) -> None:
        """Both clocks read the same until advance() moves them by the same amount."""
        clock = ManualClock(T0, monotonic=100.0)
        assert (clock.now(), clock.monotonic(), clock()) == (T0, 100.0, T0)
        assert clock.advance(2.5) == T0 + timedelta(seconds=2.5)
        assert (clock.now(), clock.monotonic()) == (T0 + timedelta(seconds=2.5), 102.5)

    def test_set_moves_wall_time_only(self) -> None:
        """Wall time may jump (either way); monotonic time does not follow it."""
        clock = ManualClock(T0)
        clock.set(T0 - timedelta(hours=1))
        assert (clock.now(), clock.monotonic()) == (T0 - timedelta(hours=1), 0.0)

    def test_refuses_to_go_back(self) -> None:
        """advance() with a negative step is a test bug, not a clock."""
        clock = ManualClock(T0)
        with pytest.raises(ValueError, match="forward"):
            clock.advance(-1)
        assert clock.monotonic() == 0.0

    def test_refuses_naive_times(self) -> None:
        """Times are timezone-aware UTC everywhere."""
        with pytest.raises(ValueError, match="timezone-aware"):
            ManualClock(datetime(2025, 3, 1))
        with pytest.raises(ValueError, match="timezone-aware"):
            ManualClock(T0).set(datetime(2025, 3, 1))


class TestAsClock:
    def test_none_is_the_system_clock(self) -> None:
        """Without a clock the machine's is used: aware UTC wall time, monotonic seconds."""
        clock = as_clock(None)
        assert isinstance(clock, SystemClock)
        before = datetime.now(UTC)
        now = clock.now()
        assert now.tzinfo is not None
        assert before <= now <= datetime.now(UTC)
        first = clock.monotonic()
        assert clock.monotonic() >= first

    def test_a_clock_is_used_as_it_is(self) -> None:
        """A clock object passes through unchanged."""
        manual = ManualClock(T0)
        assert as_clock(manual) is manual

    def test_any_object_with_both_methods_is_a_clock(self) -> None:
        """Duck typing: now() and monotonic() are all a clock needs."""

        class Other:
            def now(self) -> datetime:
                return T0

            def monotonic(self) -> float:
                return 7.0

        other = Other()
        assert as_clock(other) is other

    def test_a_wall_function_gets_system_monotonic_time(self) -> None:
        """A bare () -> datetime (the runtime's clock) gives the wall time; monotonic is real."""
        moments = [T0, T0 + timedelta(seconds=1)]
        clock = as_clock(lambda: moments[0])
        assert isinstance(clock, WallClock)
        assert clock.now() == T0
        moments[0] = moments[1]
        assert clock.now() == T0 + timedelta(seconds=1)
        first = clock.monotonic()
        assert clock.monotonic() >= first > 0

    def test_an_object_with_a_now_value_is_a_wall_function(self) -> None:
        """A callable fake whose ``now`` is a datetime attribute is called for wall time."""

        class Fake:
            now = T0

            def __call__(self) -> datetime:
                return self.now

        assert as_clock(Fake()).now() == T0

    def test_anything_else_is_refused(self) -> None:
        """A value that tells no time is a clear error."""
        with pytest.raises(TypeError, match="not a clock"):
            as_clock(42)  # type: ignore[arg-type]


def test_utcnow_is_aware_utc_wall_time() -> None:
    """The default wall-time function of the events sink and the status poller."""
    before = datetime.now(UTC)
    now = utcnow()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after
