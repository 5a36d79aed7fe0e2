"""What each attempt commits: failover, breakers, backoff, final states, the attempt log line."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from structlog.testing import capture_logs

from mailbridge.delivery.clock import ManualClock
from mailbridge.delivery.dispatcher import Dispatcher
from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import SmsState
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
    states_of,
)


class TestFailures:
    async def test_failover_to_next_provider(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A temporary failure sends the SMS through the next provider at once."""
        first, second = FakeProvider("first"), FakeProvider("second")
        first.failure = TemporaryProviderError("first: HTTP 503")
        rid = await enqueue_sms(storage, ["+79990000001"])
        d = Dispatcher(
            storage,
            {"first": first, "second": second},
            make_settings("first", "second"),
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
            make_settings("first", "second"),
            clock=clock,
            owner="t",
        )
        await enqueue_sms(storage, ["+79990000001"])
        await d.run_once()
        await enqueue_sms(storage, ["+79990000002"])
        await d.run_once()
        assert len(first.batches) == 2  # breaker_failures = 2: now open
        await enqueue_sms(storage, ["+79990000003"])
        await d.run_once()
        assert len(first.batches) == 2
        assert second.recipients == ["+79990000001", "+79990000002", "+79990000003"]
        first.failure = None
        clock.advance(10)
        await enqueue_sms(storage, ["+79990000004"], now=clock.now(), due=clock.now())
        await d.run_once()
        assert first.recipients[-1] == "+79990000004"  # the probe
        await enqueue_sms(storage, ["+79990000005"], now=clock.now(), due=clock.now())
        await d.run_once()
        assert first.recipients[-1] == "+79990000005"  # closed again

    async def test_open_breaker_defers_to_its_reset(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """With every provider's breaker open, a row waits for the reset without a request."""
        main = FakeProvider("main")
        main.failure = TemporaryProviderError("down")
        d = Dispatcher(
            storage, {"main": main}, make_settings("main"), clock=clock, owner="t", rng=lambda: 0.5
        )
        for i in range(2):
            await enqueue_sms(storage, [f"+7999000000{i}"])
            await d.run_once()
        assert len(main.batches) == 2  # the breaker is open now
        clock.advance(1)
        rid = await enqueue_sms(storage, ["+79990000009"], now=clock.now(), due=clock.now())
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
            make_settings("first", "second", routing=routing),
            clock=clock,
            owner="t",
            rng=lambda: 0.5,
        )
        second.failure = TemporaryProviderError("down")  # second's breaker opens at T0
        opener = await enqueue_sms(storage, ["+78880000001"])
        await d.run_once()
        assert await storage.cancel_request(opener, T0) == 1
        second.failure = None
        clock.advance(10)  # second may be probed again
        probe = await enqueue_sms(
            storage, ["+78880000002"], now=clock.now(), due=clock.now() + timedelta(seconds=0.5)
        )
        second.gate = asyncio.Event()  # the probe stays out
        rid = await enqueue_sms(storage, ["+79990000001"], now=clock.now(), due=clock.now())
        first.failure = TemporaryProviderError("503")
        original = first.send

        async def slow_send(batch: Sequence[Outbound]) -> list[SendResult]:
            clock.advance(1)  # the failover lands after the probe is due
            return await original(batch)

        first.send = slow_send  # type: ignore[method-assign]
        run = asyncio.create_task(d.run_once())
        await asyncio.wait_for(second.started.wait(), 5)
        for _ in range(100):
            if await states_of(storage, rid) == [SmsState.SCHEDULED]:
                break
            await asyncio.sleep(0.01)
        second.gate.set()
        await asyncio.wait_for(run, 5)
        assert first.recipients == ["+79990000001"]
        assert second.recipients == ["+78880000001", "+78880000002"]
        assert await states_of(storage, probe) == [SmsState.SENT]
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
        rid = await enqueue_sms(storage, ["+79990000001"])
        d = Dispatcher(
            storage, {"main": main}, make_settings("main"), clock=clock, owner="t", rng=lambda: 0.5
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
        assert await states_of(storage, rid) == [SmsState.SENT]

    async def test_retry_after_is_honoured(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A 429 with Retry-After reschedules no earlier than the hint."""
        main = FakeProvider("main")
        main.failure = TemporaryProviderError("429", retry_after_s=120)
        rid = await enqueue_sms(storage, ["+79990000001"])
        d = Dispatcher(
            storage, {"main": main}, make_settings("main"), clock=clock, owner="t", rng=lambda: 0.5
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
        rid = await enqueue_sms(storage, numbers(3))
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
        await d.run_once()
        assert await states_of(storage, rid) == [SmsState.SENT, SmsState.FAILED, SmsState.SENT]

    async def test_credentials_refused_fail_loudly(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A whole-request permanent error fails every SMS and logs at error level."""
        main, spare = FakeProvider("main"), FakeProvider("spare")
        main.failure = PermanentProviderError("main: authentication failed")
        rid = await enqueue_sms(storage, ["+79990000001"])
        d = Dispatcher(
            storage,
            {"main": main, "spare": spare},
            make_settings("main", "spare"),
            clock=clock,
            owner="t",
        )
        with capture_logs() as logs:
            await d.run_once()
        assert await states_of(storage, rid) == [SmsState.FAILED]
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
            make_settings("main", "spare"),  # breaker_failures = 2: one refusal is enough anyway
            clock=clock,
            owner="t",
        )
        rid = await enqueue_sms(storage, ["+79990000001"])
        with capture_logs() as logs:
            await d.run_once()
            await d.run_once()
            second = await enqueue_sms(storage, ["+79990000002"])
            await d.run_once()
        assert await states_of(storage, rid) == [SmsState.SENT]
        assert await states_of(storage, second) == [SmsState.SENT]
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
            storage, {"main": main}, make_settings("main", routing=routing), clock=clock, owner="t"
        )
        rid = await enqueue_sms(storage, ["+79990000001"])
        with capture_logs() as logs:
            for _ in range(6):
                await d.run_once()
                clock.advance(11)
        assert await states_of(storage, rid) == [SmsState.SCHEDULED]
        tries = len(main.batches)
        assert 2 <= tries <= 6  # one probe per breaker reset, not a tight loop
        errors = [e for e in logs if e["event"] == "provider unavailable"]
        assert len(errors) == tries  # once per opening, i.e. once per backoff
        main.failure = None
        await d.run_once()
        clock.advance(11)
        await d.run_once()
        assert await states_of(storage, rid) == [SmsState.SENT]

    async def test_expired_before_sending(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """A row claimed after first_due + validity_s expires without a provider call."""
        main = FakeProvider("main")
        rid = await enqueue_sms(storage, ["+79990000001"])
        settings = make_settings("main", delivery=DeliverySettings(validity_s=60))
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        clock.advance(61)
        await d.run_once()
        assert main.batches == []
        assert await states_of(storage, rid) == [SmsState.EXPIRED]

    async def test_retries_until_expiry(self, storage: MemoryStorage, clock: ManualClock) -> None:
        """A provider down for longer than validity_s ends the SMS as expired."""
        main = FakeProvider("main")
        main.failure = TemporaryProviderError("down")
        rid = await enqueue_sms(storage, ["+79990000001"])
        settings = make_settings(
            "main", delivery=DeliverySettings(validity_s=30, retry_first_s=2, retry_max_s=8)
        )
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t", rng=lambda: 0.9)
        for _ in range(40):
            await d.run_once()
            if await states_of(storage, rid) == [SmsState.EXPIRED]:
                break
            clock.advance(1)
        assert await states_of(storage, rid) == [SmsState.EXPIRED]
        assert 2 <= len(main.batches) <= 10

    async def test_test1_failure_queues_followup(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A test=1 request whose SMS fails gets the ERROR = 8 follow-up reply."""
        main = FakeProvider("main")
        main.failure = PermanentProviderError("rejected")
        rid = await enqueue_sms(storage, ["+79990000001"], test=1)
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
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
        rid = await enqueue_sms(storage, ["+79990000001"])
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
        with capture_logs():
            await d.run_once()
        assert await states_of(storage, rid) == [SmsState.SCHEDULED]

    async def test_unexpected_answer_is_one_warning(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """An adapter that chokes on an answer (RecursionError): one warning, no traceback."""
        main = FakeProvider("main")
        main.failure = RecursionError("maximum recursion depth exceeded")
        await enqueue_sms(storage, ["+79990000001"])
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
        with capture_logs() as logs:
            await d.run_once()
        unexpected = [e for e in logs if e["event"] == "unexpected provider answer"]
        assert len(unexpected) == 1
        assert unexpected[0]["log_level"] == "warning"
        assert unexpected[0]["error"] == "RecursionError"
        assert not any(e.get("exc_info") for e in logs)
        assert not any(e["log_level"] in ("error", "critical") for e in logs)


class TestAttemptLog:
    async def test_one_log_line_per_attempt(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Each attempt logs a `delivery` event with ids, provider, outcome and duration."""
        first, second = FakeProvider("first"), FakeProvider("second")
        first.failure = TemporaryProviderError("503")
        rid = await enqueue_sms(storage, ["+79990000001"])
        d = Dispatcher(
            storage,
            {"first": first, "second": second},
            make_settings("first", "second"),
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


def _storage_down(storage: MemoryStorage) -> list[bool]:
    """``mark_sent`` raises while the returned flag's first item is True."""
    down = [True]
    original = storage.mark_sent

    async def mark_sent(sms_id: int, **kwargs: Any) -> None:
        if down[0]:
            raise OSError("database is locked")
        await original(sms_id, **kwargs)

    storage.mark_sent = mark_sent  # type: ignore[method-assign]
    return down


async def _sms_id(storage: MemoryStorage, request_id: str) -> int:
    detail = await storage.show_request(request_id)
    assert detail is not None
    return detail.sms[0].sms_id


class TestUnrecorded:
    async def test_outcome_kept_until_storage_is_back_and_never_sent_twice(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """A sent row storage could not mark stays in flight (a new claim of it is ignored)
        and is marked sent once storage takes writes again."""
        main = FakeProvider("main")
        rid = await enqueue_sms(storage, ["+79990000001"])
        sms_id = await _sms_id(storage, rid)
        down = _storage_down(storage)
        settings = make_settings("main", delivery=DeliverySettings(lease_s=10))
        d = Dispatcher(storage, {"main": main}, settings, clock=clock, owner="t")
        with capture_logs() as logs:
            assert await d.run_once() == 1
            assert d.in_flight == 1
            assert await states_of(storage, rid) == [SmsState.SENDING]
            clock.advance(11)  # the lease ran out: storage hands the row out again
            assert await d.run_once() == 0
            assert len(main.batches) == 1
            down[0] = False
            for _ in range(500):
                if d.in_flight == 0:
                    break
                await asyncio.sleep(0.01)
            await d.stop(5)
        assert d.in_flight == 0
        assert await states_of(storage, rid) == [SmsState.SENT]
        assert len(main.batches) == 1
        (kept,) = [
            e
            for e in logs
            if e["event"] == "delivery outcome not recorded, kept until storage is back"
        ]
        assert (kept["sms_id"], kept["request_id"], kept["error"], kept["kept"]) == (
            sms_id,
            rid,
            "OSError",
            1,
        )
        assert kept["log_level"] == "warning"
        recorded = [e for e in logs if e["event"] == "delivery outcome recorded"]
        assert [e["sms_id"] for e in recorded] == [sms_id]

    async def test_outcomes_still_kept_at_stop_are_logged_as_lost(
        self, storage: MemoryStorage, clock: ManualClock
    ) -> None:
        """Storage still down at stop: one error line names the SMS left for their lease."""
        main = FakeProvider("main")
        rid = await enqueue_sms(storage, ["+79990000001"])
        sms_id = await _sms_id(storage, rid)
        _storage_down(storage)
        d = Dispatcher(storage, {"main": main}, make_settings("main"), clock=clock, owner="t")
        with capture_logs() as logs:
            assert await d.run_once() == 1
            await d.stop(5)
        assert await states_of(storage, rid) == [SmsState.SENDING]
        assert main.closed
        (lost,) = [e for e in logs if e["event"].startswith("delivery outcomes lost at stop")]
        assert lost["event"] == (
            "delivery outcomes lost at stop; those SMS are sent again after their lease"
        )
        assert lost["log_level"] == "error"
        assert lost["sms_ids"] == [sms_id]
        assert not any(e["event"] == "delivery outcome recorded" for e in logs)
