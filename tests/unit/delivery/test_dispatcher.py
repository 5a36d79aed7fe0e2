"""The dispatcher's loop and sending over MemoryStorage, fake providers and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.delivery.clock import ManualClock
from mailbridge.delivery.dispatcher import Dispatcher
from mailbridge.models import Format, SmsState
from mailbridge.providers.base import Outbound, SendResult
from mailbridge.settings import (
    DeliverySettings,
    RouteRule,
    RoutingSettings,
)
from mailbridge.storage.memory import MemoryStorage
from tests.unit.delivery.support import (
    T0,
    FakeProvider,
    enqueue_sms,
    make_settings,
    numbers,
    sent_events,
    states_of,
)


class TestSending:
    async def test_due_rows_are_sent_and_committed(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Due rows go to the provider and end `sent` with the provider id."""
        main = FakeProvider("main")
        rid = await enqueue_sms(storage, numbers(3))
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
        assert await d.run_once() == 3
        assert main.recipients == numbers(3)
        detail = await storage.show_request(rid)
        assert detail is not None
        assert [s.state for s in detail.sms] == [SmsState.SENT] * 3
        assert detail.sms[0].provider == "main"
        assert detail.sms[0].provider_id == f"main-{detail.sms[0].sms_id}"
        assert d.in_flight == 0

    async def test_outbound_carries_the_row(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """The provider gets the text, sender, format, request id and a client ref."""
        main = FakeProvider("main", formats=frozenset(Format))
        rid = await enqueue_sms(storage, ["+79990000001"], text="alert: disk", fmt=Format.FLASH)
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
        await d.run_once()
        (out,) = main.batches[0]
        assert (out.text, out.sender, out.format, out.request_id) == (
            "alert: disk",
            "Alex",
            Format.FLASH,
            rid,
        )
        assert out.client_ref == f"mb-{out.sms_id}"

    async def test_future_rows_wait_for_their_time(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A row scheduled later is not claimed before its due time, then is."""
        main = FakeProvider("main")
        rid = await enqueue_sms(storage, ["+79990000001"], due=T0 + timedelta(minutes=5))
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
        assert await d.run_once() == 0
        assert await d.idle_timeout() == 30.0  # capped; due in 300 s
        clock.advance(299)
        assert await d.idle_timeout() == pytest.approx(1.0)
        assert await d.run_once() == 0
        clock.advance(1)
        assert await d.run_once() == 1
        assert await states_of(storage, rid) == [SmsState.SENT]

    async def test_claims_in_bounded_batches(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Never more rows in memory than the in-flight cap, however many are due."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        await enqueue_sms(storage, numbers(500))
        settings = make_settings("main", delivery=DeliverySettings(batch_size=50), concurrency=4)
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        task = asyncio.create_task(d.run_once())
        for _ in range(20):
            await asyncio.sleep(0)
        assert d.in_flight == 50
        main.gate.set()
        assert await task == 500
        assert len(main.recipients) == 500

    async def test_identical_texts_are_batched(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Rows with the same text/sender/format share a request up to max_batch."""
        bulk = FakeProvider("bulk", max_batch=4)
        await enqueue_sms(storage, numbers(10), text="same")
        await enqueue_sms(storage, numbers(2, 100), text="other")
        d = Dispatcher(storage, {"bulk": bulk}, make_settings("bulk"), clock=clock, owner="t")
        await d.run_once()
        sizes = sorted(len(b) for b in bulk.batches)
        assert sizes == [2, 2, 4, 4]
        for batch in bulk.batches:
            assert len({o.text for o in batch}) == 1

    async def test_rate_limit_follows_the_clock(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """rate_per_s refills by the clock's monotonic time: frozen, nothing past the burst goes."""
        main = FakeProvider("main")
        base = make_settings("main", concurrency=1)
        settings = replace(base, providers=(replace(base.providers[0], rate_per_s=20.0),))
        await enqueue_sms(storage, numbers(21))
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        run = asyncio.create_task(d.run_once())
        for _ in range(20):  # 0.2 s of real time: several 0.05 s waits for a token
            await asyncio.sleep(0.01)
        assert len(main.recipients) == 20  # one second's burst; the clock stands still
        assert not run.done()
        clock.advance(0.05)  # one token's worth
        assert await asyncio.wait_for(run, 5) == 21
        assert main.recipients == numbers(21)

    async def test_concurrency_cap(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """No more requests in flight to a provider than its concurrency."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        await enqueue_sms(storage, numbers(20))
        d = Dispatcher(
            storage, {"main": main}, make_settings("main", concurrency=3), clock=clock, owner="t"
        )
        task = asyncio.create_task(d.run_once())
        for _ in range(20):
            await asyncio.sleep(0)
        assert main.active == 3
        main.gate.set()
        await task
        assert main.peak == 3
        assert len(main.recipients) == 20

    async def test_format_routes_only_to_carriers(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A flash SMS skips a provider without format 1; with no carrier it fails."""
        plain = FakeProvider("plain")
        rich = FakeProvider("rich", formats=frozenset({Format.SMS, Format.FLASH}))
        flash = await enqueue_sms(storage, ["+79990000001"], fmt=Format.FLASH)
        voice = await enqueue_sms(storage, ["+79990000002"], fmt=Format.VOICE)
        d = Dispatcher(
            storage,
            {"plain": plain, "rich": rich},
            make_settings("plain", "rich"),
            clock=clock,
            owner="t",
        )
        await d.run_once()
        assert plain.recipients == []
        assert rich.recipients == ["+79990000001"]
        assert await states_of(storage, flash) == [SmsState.SENT]
        assert await states_of(storage, voice) == [SmsState.FAILED]

    async def test_prefix_rules(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """Numbers go to the providers of their longest matching prefix."""
        ru, other = FakeProvider("ru"), FakeProvider("other")
        routing = RoutingSettings(
            default=("other",), rules=(RouteRule(prefix="+7", providers=("ru",)),)
        )
        await enqueue_sms(storage, ["+79990000001", "+447700900123"])
        d = Dispatcher(
            storage,
            {"ru": ru, "other": other},
            make_settings("ru", "other", routing=routing),
            clock=clock,
            owner="t",
        )
        await d.run_once()
        assert ru.recipients == ["+79990000001"]
        assert other.recipients == ["+447700900123"]


class TestLoop:
    async def test_wake_sends_a_new_row(self, storage: MemoryStorage) -> None:
        """With the loop asleep, wake() after a commit gets the row sent."""
        main = FakeProvider("main")
        sent = asyncio.Event()
        original = main.send

        async def send(batch: Sequence[Outbound]) -> list[SendResult]:
            result = await original(batch)
            sent.set()
            return result

        main.send = send  # type: ignore[method-assign]
        now = datetime.now(UTC)
        d = Dispatcher(storage, {"main": main}, make_settings("main"), owner="t")
        await d.start()
        for _ in range(5):
            await asyncio.sleep(0)
        await enqueue_sms(storage, ["+79990000001"], due=now, now=now)
        d.wake()
        await asyncio.wait_for(sent.wait(), 5)
        await d.stop(5)
        assert main.recipients == ["+79990000001"]
        assert main.closed

    async def test_wake_for_rows_due_after_the_next_look_is_skipped(
        self, storage: MemoryStorage
    ) -> None:
        """A wake for rows due after the loop's next look claims nothing; an earlier one does."""
        main = FakeProvider("main")
        sent = sent_events(storage)
        sent.append(asyncio.Event())
        claims: list[int] = []
        original = storage.claim_due

        async def claim_due(now: datetime, *, limit: int, lease_s: float, owner: str) -> Any:
            jobs = await original(now, limit=limit, lease_s=lease_s, owner=owner)
            claims.append(len(jobs))
            return jobs

        storage.claim_due = claim_due  # type: ignore[method-assign]
        now = datetime.now(UTC)
        d = Dispatcher(storage, {"main": main}, make_settings("main"), owner="t")
        await d.start()
        for _ in range(20):
            await asyncio.sleep(0)
        assert claims == [0]  # the first look; asleep now (at most MAX_IDLE_S)
        tomorrow = now + timedelta(days=1)
        await enqueue_sms(storage, ["+79990000002"], due=tomorrow, now=now)
        d.wake(tomorrow)
        for _ in range(20):
            await asyncio.sleep(0)
        assert claims == [0]  # not woken: the loop looks again before tomorrow anyway
        await enqueue_sms(storage, ["+79990000001"], due=now, now=now)
        d.wake(now)
        await asyncio.wait_for(sent[-1].wait(), 5)
        await d.stop(5)
        assert main.recipients == ["+79990000001"]
        assert claims[:2] == [0, 1]

    async def test_idle_wake_claims_at_once(self, storage: MemoryStorage) -> None:
        """With nothing in flight a wake claims at once, whatever the coalescing window."""
        main = FakeProvider("main")
        sent = sent_events(storage)
        now = datetime.now(UTC)
        d = Dispatcher(storage, {"main": main}, make_settings("main"), owner="t", coalesce_s=3600.0)
        await d.start()
        for number in numbers(3):
            sent.append(asyncio.Event())
            await enqueue_sms(storage, [number], due=now, now=now)
            d.wake()
            await asyncio.wait_for(sent[-1].wait(), 5)
        await d.stop(5)
        assert main.recipients == numbers(3)

    async def test_wakes_while_busy_coalesce_into_one_claim(self, storage: MemoryStorage) -> None:
        """Rows that trickle in while a send is under way are claimed together once it settles."""
        main = FakeProvider("main", max_batch=10)
        main.gate = asyncio.Event()
        claims: list[int] = []
        original = storage.claim_due

        async def claim_due(now: datetime, *, limit: int, lease_s: float, owner: str) -> Any:
            jobs = await original(now, limit=limit, lease_s=lease_s, owner=owner)
            claims.append(len(jobs))
            return jobs

        storage.claim_due = claim_due  # type: ignore[method-assign]
        sent = sent_events(storage)
        sent.extend(asyncio.Event() for _ in range(5))
        now = datetime.now(UTC)
        first = await enqueue_sms(storage, ["+79990000001"], due=now, now=now)
        d = Dispatcher(storage, {"main": main}, make_settings("main"), owner="t", coalesce_s=3600.0)
        await d.start()
        await asyncio.wait_for(main.started.wait(), 5)
        later = []
        for number in numbers(4, start=10):
            later.append(await enqueue_sms(storage, [number], due=now, now=now))
            d.wake()
            for _ in range(10):
                await asyncio.sleep(0)
        busy_claims = list(claims)
        main.gate.set()
        await asyncio.wait_for(sent[-1].wait(), 5)
        await d.stop(5)
        assert busy_claims == [1]
        assert claims[:2] == [1, 4]
        assert [len(b) for b in main.batches] == [1, 4]
        for rid in [first, *later]:
            assert await states_of(storage, rid) == [SmsState.SENT]

    async def test_stop_finishes_sends_under_way(self, storage: MemoryStorage) -> None:
        """stop() lets a started send finish and leaves unsent claimed rows `sending`."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        now = datetime.now(UTC)
        rid = await enqueue_sms(storage, numbers(3), due=now, now=now)
        d = Dispatcher(storage, {"main": main}, make_settings("main", concurrency=1), owner="t")
        await d.start()
        await asyncio.wait_for(main.started.wait(), 5)
        stopping = asyncio.create_task(d.stop(5))
        await asyncio.sleep(0)
        main.gate.set()
        await stopping
        assert len(main.batches) == 1
        states = await states_of(storage, rid)
        assert states.count(SmsState.SENT) == 1
        assert states.count(SmsState.SENDING) == 2

    async def test_reclaimed_row_is_not_sent_twice(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A row whose lease ran out while still in flight here is not sent again."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        rid = await enqueue_sms(storage, ["+79990000001"])
        settings = make_settings("main", delivery=DeliverySettings(lease_s=10))
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        first = asyncio.create_task(d.run_once())
        await asyncio.wait_for(main.started.wait(), 5)
        clock.advance(11)
        assert await d.run_once() == 0
        main.gate.set()
        await first
        assert len(main.batches) == 1
        assert await states_of(storage, rid) == [SmsState.SENT]

    async def test_reload_switches_providers(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """After reload the new providers carry traffic and the old one is closed."""
        old, new = FakeProvider("old"), FakeProvider("new")
        d = Dispatcher(storage, {"old": old}, make_settings("old"), clock=clock, owner="t")
        d.reload(make_settings("new"), {"new": new})
        await enqueue_sms(storage, ["+79990000001"])
        await d.run_once()
        assert new.recipients == ["+79990000001"]
        assert old.closed


def test_settings_helper_is_consistent() -> None:
    """The test settings name each provider once (guards the fixtures above)."""
    s = make_settings("a", "b")
    assert [p.name for p in s.providers] == ["a", "b"]
    assert replace(s.routing, rules=()).default == ("a", "b")
