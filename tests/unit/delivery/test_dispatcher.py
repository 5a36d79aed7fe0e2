"""The dispatcher over MemoryStorage, fake providers and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from mailbridge.core.encoding import split_text
from mailbridge.delivery.clock import ManualClock
from mailbridge.delivery.dispatcher import Dispatcher
from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format, Message, RouteKind, SmsRequest, SmsState
from mailbridge.providers.base import Outbound, SendResult, Sent
from mailbridge.settings import (
    DeliverySettings,
    LimitsSettings,
    ProviderSettings,
    RouteRule,
    RoutingSettings,
    Settings,
)
from mailbridge.storage.base import Intake, ReplyDraft
from mailbridge.storage.memory import MemoryStorage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = LimitsSettings(duplicate_max=10**6, flood_max=10**6)


class FakeProvider:
    """A provider whose answers the test scripts; records every batch."""

    def __init__(
        self,
        name: str,
        *,
        formats: frozenset[Format] = frozenset({Format.SMS}),
        max_batch: int = 1,
    ) -> None:
        self.name = name
        self.formats = formats
        self.max_batch = max_batch
        self.batches: list[list[Outbound]] = []
        self.failure: Exception | None = None  # raised for the whole request
        self.per_item: dict[str, SendResult] = {}  # recipient -> result
        self.gate: asyncio.Event | None = None  # when set, sends wait for it
        self.active = 0
        self.peak = 0
        self.started = asyncio.Event()
        self.closed = False

    @property
    def recipients(self) -> list[str]:
        return [o.recipient for batch in self.batches for o in batch]

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        self.batches.append(list(batch))
        self.active += 1
        self.started.set()
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.failure is not None:
                raise self.failure
            return [
                self.per_item.get(
                    o.recipient, Sent(provider_id=f"{self.name}-{o.sms_id}", answer="ok")
                )
                for o in batch
            ]
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        self.closed = True


def _settings(
    *names: str,
    routing: RoutingSettings | None = None,
    delivery: DeliverySettings | None = None,
    concurrency: int = 8,
) -> Settings:
    return Settings(
        providers=tuple(
            ProviderSettings(name=n, type="file", concurrency=concurrency) for n in names
        ),
        routing=routing or RoutingSettings(default=names, breaker_failures=2, breaker_reset_s=10),
        delivery=delivery or DeliverySettings(),
    )


async def _enqueue(
    storage: MemoryStorage,
    recipients: Sequence[str],
    *,
    text: str = "hello",
    due: datetime = T0,
    fmt: Format = Format.SMS,
    test: int = 0,
    now: datetime = T0,
) -> str:
    request = SmsRequest(
        account="alex",
        client_id=None,
        due=due,
        translit=0,
        format=fmt,
        sender="Alex",
        test=test,
        messages=(Message(text=text, recipients=tuple(recipients), split=split_text(text, fmt)),),
    )
    intake = Intake(
        received_at=now,
        client_ip="127.0.0.1",
        mail_from="ops@example.com",
        rcpt_to=("send@localhost",),
        raw=b"",
        mode=RouteKind.COMMAND,
        account="alex",
        client_id=None,
        request=request,
        error=None,
        test=test,
        reply=ReplyDraft(to="ops@example.com", subject="Re: x", in_reply_to="", references=""),
    )
    result = await storage.accept(intake, limits=LIMITS, reply_rate_per_hour=30, now=now)
    assert result.error is None
    return result.request_id


def _numbers(n: int, start: int = 0) -> list[str]:
    return [f"+7999{start + i:07d}" for i in range(n)]


async def _states(storage: MemoryStorage, request_id: str) -> list[SmsState]:
    detail = await storage.show_request(request_id)
    assert detail is not None
    return [s.state for s in detail.sms]


def _sent_events(storage: MemoryStorage) -> list[asyncio.Event]:
    """Events set as the 1st, 2nd, … row is committed ``sent`` (append one per row awaited)."""
    events: list[asyncio.Event] = []
    original = storage.mark_sent
    count = 0

    async def mark_sent(sms_id: int, **kwargs: Any) -> None:
        nonlocal count
        await original(sms_id, **kwargs)
        count += 1
        for event in events[:count]:
            event.set()

    storage.mark_sent = mark_sent  # type: ignore[method-assign]
    return events


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


class TestSending:
    async def test_due_rows_are_sent_and_committed(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Due rows go to the provider and end `sent` with the provider id."""
        main = FakeProvider("main")
        rid = await _enqueue(storage, _numbers(3))
        d = Dispatcher(storage, {"main": main}, _settings("main"), clock=clock, owner="t")
        assert await d.run_once() == 3
        assert main.recipients == _numbers(3)
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
        rid = await _enqueue(storage, ["+79990000001"], text="alert: disk", fmt=Format.FLASH)
        d = Dispatcher(storage, {"main": main}, _settings("main"), clock=clock, owner="t")
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
        rid = await _enqueue(storage, ["+79990000001"], due=T0 + timedelta(minutes=5))
        d = Dispatcher(storage, {"main": main}, _settings("main"), clock=clock, owner="t")
        assert await d.run_once() == 0
        assert await d.idle_timeout() == 30.0  # capped; due in 300 s
        clock.advance(299)
        assert await d.idle_timeout() == pytest.approx(1.0)
        assert await d.run_once() == 0
        clock.advance(1)
        assert await d.run_once() == 1
        assert await _states(storage, rid) == [SmsState.SENT]

    async def test_claims_in_bounded_batches(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Never more rows in memory than the in-flight cap, however many are due."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        await _enqueue(storage, _numbers(500))
        settings = _settings("main", delivery=DeliverySettings(batch_size=50), concurrency=4)
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
        await _enqueue(storage, _numbers(10), text="same")
        await _enqueue(storage, _numbers(2, 100), text="other")
        d = Dispatcher(storage, {"bulk": bulk}, _settings("bulk"), clock=clock, owner="t")
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
        base = _settings("main", concurrency=1)
        settings = replace(base, providers=(replace(base.providers[0], rate_per_s=20.0),))
        await _enqueue(storage, _numbers(21))
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        run = asyncio.create_task(d.run_once())
        for _ in range(20):  # 0.2 s of real time: several 0.05 s waits for a token
            await asyncio.sleep(0.01)
        assert len(main.recipients) == 20  # one second's burst; the clock stands still
        assert not run.done()
        clock.advance(0.05)  # one token's worth
        assert await asyncio.wait_for(run, 5) == 21
        assert main.recipients == _numbers(21)

    async def test_concurrency_cap(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """No more requests in flight to a provider than its concurrency."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        await _enqueue(storage, _numbers(20))
        d = Dispatcher(
            storage, {"main": main}, _settings("main", concurrency=3), clock=clock, owner="t"
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
        flash = await _enqueue(storage, ["+79990000001"], fmt=Format.FLASH)
        voice = await _enqueue(storage, ["+79990000002"], fmt=Format.VOICE)
        d = Dispatcher(
            storage,
            {"plain": plain, "rich": rich},
            _settings("plain", "rich"),
            clock=clock,
            owner="t",
        )
        await d.run_once()
        assert plain.recipients == []
        assert rich.recipients == ["+79990000001"]
        assert await _states(storage, flash) == [SmsState.SENT]
        assert await _states(storage, voice) == [SmsState.FAILED]

    async def test_prefix_rules(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """Numbers go to the providers of their longest matching prefix."""
        ru, other = FakeProvider("ru"), FakeProvider("other")
        routing = RoutingSettings(
            default=("other",), rules=(RouteRule(prefix="+7", providers=("ru",)),)
        )
        await _enqueue(storage, ["+79990000001", "+447700900123"])
        d = Dispatcher(
            storage,
            {"ru": ru, "other": other},
            _settings("ru", "other", routing=routing),
            clock=clock,
            owner="t",
        )
        await d.run_once()
        assert ru.recipients == ["+79990000001"]
        assert other.recipients == ["+447700900123"]


class TestFailures:
    async def test_failover_to_next_provider(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A temporary failure sends the SMS through the next provider at once."""
        first, second = FakeProvider("first"), FakeProvider("second")
        first.failure = TemporaryProviderError("first: HTTP 503")
        rid = await _enqueue(storage, ["+79990000001"])
        d = Dispatcher(
            storage,
            {"first": first, "second": second},
            _settings("first", "second"),
            clock=clock,
            owner="t",
        )
        await d.run_once()
        assert second.recipients == ["+79990000001"]
        detail = await storage.show_request(rid)
        assert detail is not None
        (sms,) = detail.sms
        assert sms.state is SmsState.SENT
        assert [(a.provider, a.outcome) for a in sms.attempts] == [
            ("first", "temporary"),
            ("second", "sent"),
        ]

    async def test_breaker_opens_and_fails_back(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """After breaker_failures the first provider is skipped; after reset it is probed back."""
        first, second = FakeProvider("first"), FakeProvider("second")
        first.failure = TemporaryProviderError("down")
        d = Dispatcher(
            storage,
            {"first": first, "second": second},
            _settings("first", "second"),
            clock=clock,
            owner="t",
        )
        await _enqueue(storage, ["+79990000001"])
        await d.run_once()
        await _enqueue(storage, ["+79990000002"])
        await d.run_once()
        assert len(first.batches) == 2  # breaker_failures = 2: now open
        await _enqueue(storage, ["+79990000003"])
        await d.run_once()
        assert len(first.batches) == 2
        assert second.recipients == ["+79990000001", "+79990000002", "+79990000003"]
        first.failure = None
        clock.advance(10)
        await _enqueue(storage, ["+79990000004"], now=clock.now(), due=clock.now())
        await d.run_once()
        assert first.recipients[-1] == "+79990000004"  # the probe
        await _enqueue(storage, ["+79990000005"], now=clock.now(), due=clock.now())
        await d.run_once()
        assert first.recipients[-1] == "+79990000005"  # closed again

    async def test_open_breaker_defers_to_its_reset(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """With every provider's breaker open, a row waits for the reset without a request."""
        main = FakeProvider("main")
        main.failure = TemporaryProviderError("down")
        d = Dispatcher(
            storage, {"main": main}, _settings("main"), clock=clock, owner="t", rng=lambda: 0.5
        )
        for i in range(2):
            await _enqueue(storage, [f"+7999000000{i}"])
            await d.run_once()
        assert len(main.batches) == 2  # the breaker is open now
        clock.advance(1)
        rid = await _enqueue(storage, ["+79990000009"], now=clock.now(), due=clock.now())
        assert await d.run_once() == 1
        assert len(main.batches) == 2
        detail = await storage.show_request(rid)
        assert detail is not None
        (sms,) = detail.sms
        assert sms.state is SmsState.SCHEDULED
        assert sms.due == T0 + timedelta(seconds=10)  # breaker_reset_s after it opened
        assert "circuit open" in (sms.error or "")

    async def test_open_breaker_after_a_failover_backs_off(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A row that failed over in this round finds the rest paused: backoff, not a wait."""
        first, second = FakeProvider("first"), FakeProvider("second")
        routing = RoutingSettings(
            default=("first", "second"),
            rules=(RouteRule(prefix="+7888", providers=("second",)),),
            breaker_failures=1,
            breaker_reset_s=10,
        )
        d = Dispatcher(
            storage,
            {"first": first, "second": second},
            _settings("first", "second", routing=routing),
            clock=clock,
            owner="t",
            rng=lambda: 0.5,
        )
        second.failure = TemporaryProviderError("down")  # second's breaker opens at T0
        opener = await _enqueue(storage, ["+78880000001"])
        await d.run_once()
        assert await storage.cancel_request(opener, T0) == 1
        second.failure = None
        clock.advance(10)  # second may be probed again
        probe = await _enqueue(
            storage, ["+78880000002"], now=clock.now(), due=clock.now() + timedelta(seconds=0.5)
        )
        second.gate = asyncio.Event()  # the probe stays out
        rid = await _enqueue(storage, ["+79990000001"], now=clock.now(), due=clock.now())
        first.failure = TemporaryProviderError("503")
        original = first.send

        async def slow_send(batch: Sequence[Outbound]) -> list[SendResult]:
            clock.advance(1)  # the failover lands after the probe is due
            return await original(batch)

        first.send = slow_send  # type: ignore[method-assign]
        run = asyncio.create_task(d.run_once())
        await asyncio.wait_for(second.started.wait(), 5)
        for _ in range(100):
            if await _states(storage, rid) == [SmsState.SCHEDULED]:
                break
            await asyncio.sleep(0.01)
        second.gate.set()
        await asyncio.wait_for(run, 5)
        assert first.recipients == ["+79990000001"]
        assert second.recipients == ["+78880000001", "+78880000002"]
        assert await _states(storage, probe) == [SmsState.SENT]
        detail = await storage.show_request(rid)
        assert detail is not None
        (sms,) = detail.sms
        assert sms.state is SmsState.SCHEDULED
        # attempt 2 (the failover counted): 0.5 x 2 x 2 x retry_first_s after T0 + 11;
        # waiting for the breakers would have said T0 + 21
        assert sms.due == T0 + timedelta(seconds=11 + 4)
        assert "circuit open" in (sms.error or "")

    async def test_backoff_when_no_provider_left(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """With every provider failing, the SMS is rescheduled with jittered backoff."""
        main = FakeProvider("main")
        main.failure = TemporaryProviderError("timeout")
        rid = await _enqueue(storage, ["+79990000001"])
        d = Dispatcher(
            storage, {"main": main}, _settings("main"), clock=clock, owner="t", rng=lambda: 0.5
        )
        await d.run_once()
        detail = await storage.show_request(rid)
        assert detail is not None
        (sms,) = detail.sms
        assert sms.state is SmsState.SCHEDULED
        assert sms.due == T0 + timedelta(seconds=2)  # 0.5 x 2 x retry_first_s
        clock.advance(2)
        main.failure = None
        await d.run_once()
        assert await _states(storage, rid) == [SmsState.SENT]

    async def test_retry_after_is_honoured(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A 429 with Retry-After reschedules no earlier than the hint."""
        main = FakeProvider("main")
        main.failure = TemporaryProviderError("429", retry_after_s=120)
        rid = await _enqueue(storage, ["+79990000001"])
        d = Dispatcher(
            storage, {"main": main}, _settings("main"), clock=clock, owner="t", rng=lambda: 0.5
        )
        await d.run_once()
        detail = await storage.show_request(rid)
        assert detail is not None
        assert detail.sms[0].due == T0 + timedelta(seconds=120)

    async def test_permanent_item_fails_at_once(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A number the provider rejects fails without retry; the others are sent."""
        main = FakeProvider("main", max_batch=5)
        main.per_item["+79990000001"] = PermanentProviderError("number rejected")
        rid = await _enqueue(storage, _numbers(3))
        d = Dispatcher(storage, {"main": main}, _settings("main"), clock=clock, owner="t")
        await d.run_once()
        assert await _states(storage, rid) == [SmsState.SENT, SmsState.FAILED, SmsState.SENT]

    async def test_credentials_refused_fail_loudly(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A whole-request permanent error fails every SMS and logs at error level."""
        main, spare = FakeProvider("main"), FakeProvider("spare")
        main.failure = PermanentProviderError("main: authentication failed")
        rid = await _enqueue(storage, ["+79990000001"])
        d = Dispatcher(
            storage,
            {"main": main, "spare": spare},
            _settings("main", "spare"),
            clock=clock,
            owner="t",
        )
        with capture_logs() as logs:
            await d.run_once()
        assert await _states(storage, rid) == [SmsState.FAILED]
        assert spare.recipients == []
        errors = [e for e in logs if e["log_level"] == "error"]
        assert errors
        assert errors[0]["provider"] == "main"

    async def test_provider_unavailable_fails_over(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A provider refusing the gateway itself: the SMS goes to the next provider, never
        failed; the breaker opens at the first refusal, logged once at error level."""
        main, spare = FakeProvider("main"), FakeProvider("spare")
        main.failure = ProviderUnavailableError("main: credentials refused (HTTP 401)")
        d = Dispatcher(
            storage,
            {"main": main, "spare": spare},
            _settings("main", "spare"),  # breaker_failures = 2: one refusal is enough anyway
            clock=clock,
            owner="t",
        )
        rid = await _enqueue(storage, ["+79990000001"])
        with capture_logs() as logs:
            await d.run_once()
            await d.run_once()
            second = await _enqueue(storage, ["+79990000002"])
            await d.run_once()
        assert await _states(storage, rid) == [SmsState.SENT]
        assert await _states(storage, second) == [SmsState.SENT]
        assert main.recipients == ["+79990000001"]  # the open breaker kept the second away
        assert spare.recipients == ["+79990000001", "+79990000002"]
        errors = [e for e in logs if e["log_level"] == "error"]
        assert [(e["event"], e["provider"]) for e in errors] == [("provider unavailable", "main")]

    async def test_provider_unavailable_waits_within_validity(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """With no other provider the SMS waits for the breaker (not failed), and is sent once
        the provider takes it again (the operator fixed the config)."""
        main = FakeProvider("main")
        main.failure = ProviderUnavailableError("main: SMPP bind refused")
        routing = RoutingSettings(default=("main",), breaker_failures=5, breaker_reset_s=10)
        d = Dispatcher(
            storage, {"main": main}, _settings("main", routing=routing), clock=clock, owner="t"
        )
        rid = await _enqueue(storage, ["+79990000001"])
        with capture_logs() as logs:
            for _ in range(6):
                await d.run_once()
                clock.advance(11)
        assert await _states(storage, rid) == [SmsState.SCHEDULED]
        tries = len(main.batches)
        assert 2 <= tries <= 6  # one probe per breaker reset, not a tight loop
        errors = [e for e in logs if e["event"] == "provider unavailable"]
        assert len(errors) == tries  # once per opening, i.e. once per backoff
        main.failure = None
        await d.run_once()
        clock.advance(11)
        await d.run_once()
        assert await _states(storage, rid) == [SmsState.SENT]

    async def test_expired_before_sending(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """A row claimed after first_due + validity_s expires without a provider call."""
        main = FakeProvider("main")
        rid = await _enqueue(storage, ["+79990000001"])
        settings = _settings("main", delivery=DeliverySettings(validity_s=60))
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        clock.advance(61)
        await d.run_once()
        assert main.batches == []
        assert await _states(storage, rid) == [SmsState.EXPIRED]

    async def test_retries_until_expiry(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """A provider down for longer than validity_s ends the SMS as expired."""
        main = FakeProvider("main")
        main.failure = TemporaryProviderError("down")
        rid = await _enqueue(storage, ["+79990000001"])
        settings = _settings(
            "main", delivery=DeliverySettings(validity_s=30, retry_first_s=2, retry_max_s=8)
        )
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t", rng=lambda: 0.9)
        for _ in range(40):
            await d.run_once()
            if await _states(storage, rid) == [SmsState.EXPIRED]:
                break
            clock.advance(1)
        assert await _states(storage, rid) == [SmsState.EXPIRED]
        assert 2 <= len(main.batches) <= 10

    async def test_test1_failure_queues_followup(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A test=1 request whose SMS fails gets the ERROR = 8 follow-up reply."""
        main = FakeProvider("main")
        main.failure = PermanentProviderError("rejected")
        rid = await _enqueue(storage, ["+79990000001"], test=1)
        d = Dispatcher(storage, {"main": main}, _settings("main"), clock=clock, owner="t")
        await d.run_once()
        replies = await storage.claim_replies(clock.now(), limit=10, lease_s=60)
        bodies = [r.body for r in replies]
        assert any(b.startswith("ERROR = 8") and rid in b for b in bodies)

    async def test_adapter_bug_is_temporary(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """An unexpected exception from an adapter retries instead of losing the SMS."""
        main = FakeProvider("main")
        main.failure = RuntimeError("bug")
        rid = await _enqueue(storage, ["+79990000001"])
        d = Dispatcher(storage, {"main": main}, _settings("main"), clock=clock, owner="t")
        with capture_logs():
            await d.run_once()
        assert await _states(storage, rid) == [SmsState.SCHEDULED]

    async def test_unexpected_answer_is_one_warning(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """An adapter that chokes on an answer (RecursionError): one warning, no traceback."""
        main = FakeProvider("main")
        main.failure = RecursionError("maximum recursion depth exceeded")
        await _enqueue(storage, ["+79990000001"])
        d = Dispatcher(storage, {"main": main}, _settings("main"), clock=clock, owner="t")
        with capture_logs() as logs:
            await d.run_once()
        unexpected = [e for e in logs if e["event"] == "unexpected provider answer"]
        assert len(unexpected) == 1
        assert unexpected[0]["log_level"] == "warning"
        assert unexpected[0]["error"] == "RecursionError"
        assert not any(e.get("exc_info") for e in logs)
        assert not any(e["log_level"] in ("error", "critical") for e in logs)


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
        d = Dispatcher(storage, {"main": main}, _settings("main"), owner="t")
        await d.start()
        for _ in range(5):
            await asyncio.sleep(0)
        await _enqueue(storage, ["+79990000001"], due=now, now=now)
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
        sent = _sent_events(storage)
        sent.append(asyncio.Event())
        claims: list[int] = []
        original = storage.claim_due

        async def claim_due(now: datetime, *, limit: int, lease_s: float, owner: str) -> Any:
            jobs = await original(now, limit=limit, lease_s=lease_s, owner=owner)
            claims.append(len(jobs))
            return jobs

        storage.claim_due = claim_due  # type: ignore[method-assign]
        now = datetime.now(UTC)
        d = Dispatcher(storage, {"main": main}, _settings("main"), owner="t")
        await d.start()
        for _ in range(20):
            await asyncio.sleep(0)
        assert claims == [0]  # the first look; asleep now (at most MAX_IDLE_S)
        tomorrow = now + timedelta(days=1)
        await _enqueue(storage, ["+79990000002"], due=tomorrow, now=now)
        d.wake(tomorrow)
        for _ in range(20):
            await asyncio.sleep(0)
        assert claims == [0]  # not woken: the loop looks again before tomorrow anyway
        await _enqueue(storage, ["+79990000001"], due=now, now=now)
        d.wake(now)
        await asyncio.wait_for(sent[-1].wait(), 5)
        await d.stop(5)
        assert main.recipients == ["+79990000001"]
        assert claims[:2] == [0, 1]

    async def test_idle_wake_claims_at_once(self, storage: MemoryStorage) -> None:
        """With nothing in flight a wake claims at once, whatever the coalescing window."""
        main = FakeProvider("main")
        sent = _sent_events(storage)
        now = datetime.now(UTC)
        d = Dispatcher(storage, {"main": main}, _settings("main"), owner="t", coalesce_s=3600.0)
        await d.start()
        for number in _numbers(3):
            sent.append(asyncio.Event())
            await _enqueue(storage, [number], due=now, now=now)
            d.wake()
            await asyncio.wait_for(sent[-1].wait(), 5)
        await d.stop(5)
        assert main.recipients == _numbers(3)

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
        sent = _sent_events(storage)
        sent.extend(asyncio.Event() for _ in range(5))
        now = datetime.now(UTC)
        first = await _enqueue(storage, ["+79990000001"], due=now, now=now)
        d = Dispatcher(storage, {"main": main}, _settings("main"), owner="t", coalesce_s=3600.0)
        await d.start()
        await asyncio.wait_for(main.started.wait(), 5)
        later = []
        for number in _numbers(4, start=10):
            later.append(await _enqueue(storage, [number], due=now, now=now))
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
            assert await _states(storage, rid) == [SmsState.SENT]

    async def test_stop_finishes_sends_under_way(self, storage: MemoryStorage) -> None:
        """stop() lets a started send finish and leaves unsent claimed rows `sending`."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        now = datetime.now(UTC)
        rid = await _enqueue(storage, _numbers(3), due=now, now=now)
        d = Dispatcher(storage, {"main": main}, _settings("main", concurrency=1), owner="t")
        await d.start()
        await asyncio.wait_for(main.started.wait(), 5)
        stopping = asyncio.create_task(d.stop(5))
        await asyncio.sleep(0)
        main.gate.set()
        await stopping
        assert len(main.batches) == 1
        states = await _states(storage, rid)
        assert states.count(SmsState.SENT) == 1
        assert states.count(SmsState.SENDING) == 2

    async def test_reclaimed_row_is_not_sent_twice(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A row whose lease ran out while still in flight here is not sent again."""
        main = FakeProvider("main")
        main.gate = asyncio.Event()
        rid = await _enqueue(storage, ["+79990000001"])
        settings = _settings("main", delivery=DeliverySettings(lease_s=10))
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        first = asyncio.create_task(d.run_once())
        await asyncio.wait_for(main.started.wait(), 5)
        clock.advance(11)
        assert await d.run_once() == 0
        main.gate.set()
        await first
        assert len(main.batches) == 1
        assert await _states(storage, rid) == [SmsState.SENT]

    async def test_reload_switches_providers(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """After reload the new providers carry traffic and the old one is closed."""
        old, new = FakeProvider("old"), FakeProvider("new")
        d = Dispatcher(storage, {"old": old}, _settings("old"), clock=clock, owner="t")
        d.reload(_settings("new"), {"new": new})
        await _enqueue(storage, ["+79990000001"])
        await d.run_once()
        assert new.recipients == ["+79990000001"]
        assert old.closed

    async def test_one_log_line_per_attempt(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Each attempt logs a `delivery` event with ids, provider, outcome and duration."""
        first, second = FakeProvider("first"), FakeProvider("second")
        first.failure = TemporaryProviderError("503")
        rid = await _enqueue(storage, ["+79990000001"])
        d = Dispatcher(
            storage,
            {"first": first, "second": second},
            _settings("first", "second"),
            clock=clock,
            owner="t",
        )
        with capture_logs() as logs:
            await d.run_once()
        lines = [e for e in logs if e["event"] == "delivery"]
        assert [(e["provider"], e["outcome"]) for e in lines] == [
            ("first", "temporary"),
            ("second", "sent"),
        ]
        for e in lines:
            assert e["request_id"] == rid
            assert isinstance(e["sms_id"], int)
            assert e["duration_ms"] >= 0


def test_settings_helper_is_consistent() -> None:
    """The test settings name each provider once (guards the fixtures above)."""
    s = _settings("a", "b")
    assert [p.name for p in s.providers] == ["a", "b"]
    assert replace(s.routing, rules=()).default == ("a", "b")
