"""Which providers an SMS may go to, in which order, and which of them are healthy.

Pure: :func:`route` maps a recipient and a format to the failover order of
``[routing]`` (SPEC §4, §5); :class:`CircuitBreaker` is the per-provider
state machine, with time passed in:

    closed --(breaker_failures consecutive failures)--> open
    open   --(breaker_reset_s later, one probe let through)--> half-open
    half-open --probe succeeds--> closed
    half-open --probe fails-----> open (for another breaker_reset_s)

Rules match by the longest prefix; a leading ``+`` is ignored on both sides,
so ``prefix = "+7"`` and ``prefix = "7"`` both match ``+79991234567``.
Without a matching rule the ``default`` order applies, and without a
``default`` every configured provider in config order (the embedded default
is the single ``file`` provider).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from mailbridge.models import Format
from mailbridge.settings import RoutingSettings

__all__ = ["BreakerState", "CircuitBreaker", "route"]


def _digits(value: str) -> str:
    return value[1:] if value.startswith("+") else value


def route(
    recipient: str,
    fmt: Format,
    routing: RoutingSettings,
    formats: Mapping[str, Iterable[Format]],
) -> tuple[str, ...]:
    """The providers for ``recipient`` in failover order, keeping those that carry ``fmt``.

    ``formats`` maps each available provider name to the formats it carries;
    names of a route that are not in it are skipped.
    """
    order: tuple[str, ...] | None = None
    best = -1
    target = _digits(recipient)
    for rule in routing.rules:
        prefix = _digits(rule.prefix)
        if target.startswith(prefix) and len(prefix) > best:
            best = len(prefix)
            order = rule.providers
    if order is None:
        order = routing.default or tuple(formats)
    seen: set[str] = set()
    result: list[str] = []
    for name in order:
        if name in seen or name not in formats or fmt not in frozenset(formats[name]):
            continue
        seen.add(name)
        result.append(name)
    return tuple(result)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """One provider's circuit breaker; every method takes ``now``."""

    __slots__ = ("_failures", "_opened_at", "_probing", "_state", "failures", "reset_s")

    def __init__(self, *, failures: int, reset_s: float) -> None:
        self.failures = max(1, failures)
        self.reset_s = reset_s
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at: datetime | None = None
        self._probing = False

    def state(self, now: datetime) -> BreakerState:
        """The state as seen at ``now`` (an open breaker past its reset time reads half-open)."""
        if self._state is BreakerState.OPEN and self._reset_due(now):
            return BreakerState.HALF_OPEN
        return self._state

    def reopens_at(self) -> datetime | None:
        """When the next probe may go (``None`` when closed)."""
        if self._state is not BreakerState.CLOSED and self._opened_at is not None:
            return self._opened_at + timedelta(seconds=self.reset_s)
        return None

    def available(self, now: datetime) -> bool:
        """Whether :meth:`allow` would let a request through now (changes nothing)."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            return self._reset_due(now)
        return not self._probing or self._reset_due(now)

    def allow(self, now: datetime) -> bool:
        """Whether a request may go now. In half-open, only one probe at a time is let through."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._reset_due(now):
                return False
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        if self._probing and not self._reset_due(now):
            return False  # a probe is out; another one only if it never came back
        self._probing = True
        self._opened_at = now  # the probe's start: a lost probe frees the slot reset_s later
        return True

    def record_success(self, now: datetime) -> None:
        """The provider answered: close the breaker, forget the failures."""
        del now
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self, now: datetime) -> None:
        """A request failed temporarily (connection, timeout, 5xx, 429)."""
        if self._state is BreakerState.HALF_OPEN:
            self._open(now)
            return
        if self._state is BreakerState.OPEN:
            return  # a request sent before the breaker opened, answering late
        self._failures += 1
        if self._failures >= self.failures:
            self._open(now)

    def trip(self, now: datetime) -> bool:
        """The provider refuses the gateway itself: open at once, whatever the count.

        True when this opened the breaker; False when it was already open (a
        request sent before it opened, answering late): callers log once per opening.
        """
        if self._state is BreakerState.OPEN and not self._reset_due(now):
            return False
        self._open(now)
        return True

    def _open(self, now: datetime) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._probing = False
        self._failures = 0

    def _reset_due(self, now: datetime) -> bool:
        return self._opened_at is None or now >= self._opened_at + timedelta(seconds=self.reset_s)
