"""The dispatcher's and the mailer's observer hooks: what metrics are made of."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mailbridge.delivery.clock import ManualClock
from mailbridge.delivery.dispatcher import Dispatcher
from mailbridge.errors import PermanentProviderError, TemporaryProviderError
from mailbridge.observe import Observer
from mailbridge.storage.memory import MemoryStorage
from tests.unit.delivery.support import T0, FakeProvider, enqueue_sms, make_settings, numbers


class Recorder(Observer):
    """Keeps every hook call as (name, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def attempt(self, provider: str | None, outcome: str, seconds: float, count: int = 1) -> None:
        self.calls.append(("attempt", (provider, outcome)))

    def transition(self, provider: str | None, old: str, new: str, count: int = 1) -> None:
        self.calls.append(("transition", (provider, old, new, count)))

    def accepted(self, provider: str, seconds: float) -> None:
        self.calls.append(("accepted", (provider, seconds)))

    def rate_wait(self, provider: str, seconds: float) -> None:
        self.calls.append(("rate_wait", (provider,)))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


async def test_sent_rows_are_claimed_attempted_and_accepted() -> None:
    """A claim of 2 rows, 2 sent attempts, 2 sending→sent, the delay from due to acceptance."""
    storage, clock, seen = MemoryStorage(), ManualClock(T0), Recorder()
    await enqueue_sms(storage, numbers(2))
    clock.advance(7)
    main = FakeProvider("main")
    d = Dispatcher(
        storage, {"main": main}, make_settings("main"), clock=clock, owner="t", observer=seen
    )
    assert await d.run_once() == 2
    assert seen.named("transition")[0] == (None, "scheduled", "sending", 2)
    assert seen.named("attempt") == [("main", "sent"), ("main", "sent")]
    assert seen.named("transition")[1:] == [("main", "sending", "sent", 1)] * 2
    assert seen.named("accepted") == [("main", 7.0), ("main", 7.0)]
    assert d.breaker_states(clock.now()) == {"main": "closed"}


async def test_failures_move_rows_back_or_to_failed() -> None:
    """A temporary failure puts the row back to scheduled; a permanent one fails it."""
    storage, clock, seen = MemoryStorage(), ManualClock(T0), Recorder()
    await enqueue_sms(storage, numbers(1))
    main = FakeProvider("main")
    main.failure = TemporaryProviderError("down")
    d = Dispatcher(
        storage, {"main": main}, make_settings("main"), clock=clock, owner="t", observer=seen
    )
    await d.run_once()
    assert ("main", "temporary") in seen.named("attempt")
    assert ("main", "sending", "scheduled", 1) in seen.named("transition")
    main.failure = PermanentProviderError("no such number")
    clock.advance(timedelta(minutes=20).total_seconds())
    await d.run_once()
    assert ("main", "permanent") in seen.named("attempt")
    assert ("main", "sending", "failed", 1) in seen.named("transition")


async def test_receipts_move_rows_from_sent() -> None:
    """A receipt applied to a sent row is a sent → delivered transition; a repeat is not."""
    from mailbridge.delivery.events import StorageEvents
    from mailbridge.providers.events import ReceiptState
    from tests.unit.delivery.test_events_sink import SETTINGS, Clock, enqueue, receipt

    storage, seen = MemoryStorage(), Recorder()
    sink = StorageEvents(storage, SETTINGS, clock=Clock(), observer=seen)
    await enqueue(storage, "+79990000001")
    await sink.receipt(receipt("m1", ReceiptState.DELIVERED, "DELIVRD"))
    await sink.receipt(receipt("m1", ReceiptState.DELIVERED, "DELIVRD"))
    assert seen.named("transition") == [("smsc", "sent", "delivered", 1)]
