"""The clocks the delivery side reads: wall time (UTC) and monotonic seconds.

The dispatcher takes one :class:`Clock` object and reads time only through it:
``now()`` for everything stored or compared with stored times (due, validity,
breaker resets), ``monotonic()`` for the rate limits, the coalescing window
and attempt durations. Waiting itself stays with the event loop (real seconds).

:class:`SystemClock` is the real one; :class:`ManualClock` stands still until
a test (or a tool) moves it; :func:`as_clock` also takes a bare function of
wall time (``() -> datetime``, as the runtime passes it), monotonic time then
being the system's. :func:`utcnow` is the real such function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "WallClock", "as_clock", "utcnow"]


def utcnow() -> datetime:
    """The current wall time, timezone-aware UTC: the default of the parts of the delivery
    side that take a bare function of wall time (the events sink, the status poller)."""
    return datetime.now(UTC)


class Clock(Protocol):
    """Wall time and monotonic time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...


class SystemClock:
    """The machine's clocks."""

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class WallClock:
    """Wall time from a function (a test's fake clock), monotonic time from the system."""

    __slots__ = ("_wall",)

    def __init__(self, wall: Callable[[], datetime]) -> None:
        self._wall = wall

    def now(self) -> datetime:
        return self._wall()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """Both clocks stand still until :meth:`advance` (or :meth:`set`) moves them.

    Calling the object returns the wall time, so it also serves where a
    function of wall time is expected.
    """

    __slots__ = ("_monotonic", "_now")

    def __init__(self, start: datetime, *, monotonic: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start
        self._monotonic = monotonic

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move both clocks ``seconds`` forward (never back); returns the new wall time."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
        return self._now

    def set(self, moment: datetime) -> None:
        """Set the wall time (it may jump either way, as a real one may); monotonic stays."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        self._now = moment


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    """A :class:`Clock` from a clock, a function of wall time, or nothing (the system's)."""
    if clock is None:
        return SystemClock()
    if isinstance(clock, (SystemClock, WallClock, ManualClock)):
        return clock
    now = getattr(clock, "now", None)
    if callable(now) and callable(getattr(clock, "monotonic", None)):
        return clock  # type: ignore[return-value]  # any other object with both methods
    if callable(clock):
        return WallClock(clock)
    raise TypeError(f"not a clock: {clock!r}")
