"""What the dispatcher tests share: a scripted provider, settings, rows in MemoryStorage."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mailbridge.core.encoding import split_text
from mailbridge.models import Format, Message, RouteKind, SmsRequest, SmsState
from mailbridge.providers.base import Outbound, SendResult, Sent
from mailbridge.settings import (
    DeliverySettings,
    LimitsSettings,
    ProviderSettings,
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


def make_settings(
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


async def enqueue_sms(
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


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+7999{start + i:07d}" for i in range(n)]


async def states_of(storage: MemoryStorage, request_id: str) -> list[SmsState]:
    detail = await storage.show_request(request_id)
    assert detail is not None
    return [s.state for s in detail.sms]


def sent_events(storage: MemoryStorage) -> list[asyncio.Event]:
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
