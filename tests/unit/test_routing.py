"""Routing by prefix with format filtering, and the per-provider circuit breaker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.core.routing import BreakerState, CircuitBreaker, route
from mailbridge.models import Format
from mailbridge.settings import RouteRule, RoutingSettings

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

FORMATS = {
    "miatel": frozenset({Format.SMS}),
    "json": frozenset({Format.SMS, Format.PING}),
    "smsc": frozenset(Format),
    "file": frozenset(Format),
}

ROUTING = RoutingSettings(
    default=("smsc", "file"),
    rules=(
        RouteRule(prefix="+7", providers=("miatel", "json", "smsc")),
        RouteRule(prefix="7999", providers=("json", "miatel")),
        RouteRule(prefix="+44", providers=("ghost", "smsc")),
    ),
)


class TestRoute:
    @pytest.mark.parametrize(
        ("recipient", "fmt", "expected"),
        [
            ("+79161234567", Format.SMS, ("miatel", "json", "smsc")),
            ("+79991234567", Format.SMS, ("json", "miatel")),  # longest prefix, + ignored
            ("+79161234567", Format.FLASH, ("smsc",)),  # filtered by format
            ("+79991234567", Format.PING, ("json",)),
            ("+79991234567", Format.VOICE, ()),  # nobody on the route carries it
            ("+447700900123", Format.SMS, ("smsc",)),  # unknown provider skipped
            ("+12025550123", Format.SMS, ("smsc", "file")),  # default
            ("alex@example.com", Format.EMAIL, ("smsc", "file")),
        ],
    )
    def test_table(self, recipient: str, fmt: Format, expected: tuple[str, ...]) -> None:
        """Longest matching prefix picks the order; formats and unknown names filter it."""
        assert route(recipient, fmt, ROUTING, FORMATS) == expected

    def test_no_default_uses_every_provider(self) -> None:
        """Without rules or default, every provider in config order is the route."""
        assert route("+79161234567", Format.SMS, RoutingSettings(), FORMATS) == (
            "miatel",
            "json",
            "smsc",
            "file",
        )

    def test_duplicates_dropped(self) -> None:
        """A provider named twice in a route appears once."""
        routing = RoutingSettings(default=("file", "smsc", "file"))
        assert route("+1", Format.SMS, routing, FORMATS) == ("file", "smsc")


class TestCircuitBreaker:
    def _breaker(self) -> CircuitBreaker:
        return CircuitBreaker(failures=3, reset_s=10)

    def test_opens_after_consecutive_failures(self) -> None:
        """The breaker stays closed below the threshold and opens at it."""
        b = self._breaker()
        for _ in range(2):
            b.record_failure(T0)
        assert b.state(T0) is BreakerState.CLOSED
        assert b.allow(T0)
        b.record_failure(T0)
        assert b.state(T0) is BreakerState.OPEN
        assert not b.allow(T0 + timedelta(seconds=9))
        assert b.reopens_at() == T0 + timedelta(seconds=10)

    def test_success_resets_the_count(self) -> None:
        """Failures must be consecutive: a success in between starts over."""
        b = self._breaker()
        b.record_failure(T0)
        b.record_failure(T0)
        b.record_success(T0)
        b.record_failure(T0)
        b.record_failure(T0)
        assert b.state(T0) is BreakerState.CLOSED

    def test_half_open_lets_one_probe(self) -> None:
        """After reset_s one probe goes through; others wait for its result."""
        b = self._breaker()
        for _ in range(3):
            b.record_failure(T0)
        later = T0 + timedelta(seconds=10)
        assert b.state(later) is BreakerState.HALF_OPEN
        assert b.allow(later)
        assert not b.allow(later)
        assert b.state(later) is BreakerState.HALF_OPEN

    def test_probe_success_closes(self) -> None:
        """A successful probe closes the breaker."""
        b = self._breaker()
        for _ in range(3):
            b.record_failure(T0)
        later = T0 + timedelta(seconds=11)
        assert b.allow(later)
        b.record_success(later)
        assert b.state(later) is BreakerState.CLOSED
        assert b.allow(later)
        assert b.reopens_at() is None

    def test_probe_failure_reopens(self) -> None:
        """A failed probe opens the breaker for another reset_s."""
        b = self._breaker()
        for _ in range(3):
            b.record_failure(T0)
        later = T0 + timedelta(seconds=11)
        assert b.allow(later)
        b.record_failure(later)
        assert b.state(later) is BreakerState.OPEN
        assert not b.allow(later + timedelta(seconds=9))
        assert b.allow(later + timedelta(seconds=10))

    def test_available_does_not_take_the_probe(self) -> None:
        """available() answers like allow() without using up the half-open probe."""
        b = self._breaker()
        assert b.available(T0)
        for _ in range(3):
            b.record_failure(T0)
        assert not b.available(T0)
        later = T0 + timedelta(seconds=10)
        assert b.available(later)
        assert b.available(later)
        assert b.allow(later)
        assert not b.available(later)

    def test_lost_probe_frees_the_slot(self) -> None:
        """A probe that never reports back lets another probe go reset_s later."""
        b = self._breaker()
        for _ in range(3):
            b.record_failure(T0)
        probe = T0 + timedelta(seconds=10)
        assert b.allow(probe)
        assert not b.allow(probe + timedelta(seconds=5))
        assert b.allow(probe + timedelta(seconds=10))

    def test_late_failure_while_open_does_not_extend(self) -> None:
        """A failure reported while open (sent before it opened) changes nothing."""
        b = self._breaker()
        for _ in range(3):
            b.record_failure(T0)
        b.record_failure(T0 + timedelta(seconds=5))
        assert b.reopens_at() == T0 + timedelta(seconds=10)


def test_breaker_trip_opens_at_once() -> None:
    """trip() opens a closed breaker at the first call; a second call while open says False."""
    from datetime import UTC, datetime, timedelta

    from mailbridge.core.routing import BreakerState, CircuitBreaker

    now = datetime(2026, 1, 1, tzinfo=UTC)
    breaker = CircuitBreaker(failures=5, reset_s=10)
    assert breaker.trip(now) is True
    assert breaker.state(now) is BreakerState.OPEN
    assert breaker.trip(now + timedelta(seconds=1)) is False
    later = now + timedelta(seconds=11)
    assert breaker.allow(later)  # the probe
    assert breaker.trip(later) is True  # the probe refused again: open, logged again
    assert breaker.reopens_at() == later + timedelta(seconds=10)
