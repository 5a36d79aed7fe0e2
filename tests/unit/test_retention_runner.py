"""The retention pass over the memory storage: ages, batches, the space given back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mailbridge.core.records import InboundIn
from mailbridge.runtime import retention as retention_mod
from mailbridge.runtime.retention import BATCH, Retention
from mailbridge.settings import InboundSettings, LimitsSettings, StorageSettings
from mailbridge.storage.memory import MemoryStorage
from tests.unit.storage.test_storage import intake

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def fill(storage: MemoryStorage, n: int, at: datetime) -> list[str]:
    ids = []
    for i in range(n):
        item = replace(intake(now=at, ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))
        result = await storage.accept(
            item, limits=LimitsSettings(duplicate_max=10**9), reply_rate_per_hour=0, now=at
        )
        ids.append(result.request_id)
    return ids


class CountingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.compacted = 0
        self.batches: list[int] = []

    async def compact(self) -> None:
        self.compacted += 1
        await super().compact()

    async def prune_requests(self, before: datetime, *, limit: int) -> int:
        n = await super().prune_requests(before, limit=limit)
        self.batches.append(n)
        return n


async def test_raw_then_requests_by_age() -> None:
    """Raw mails go after raw_retention_days, finished requests after retention_days."""
    storage = CountingStorage()
    await storage.open()
    clock = Clock()
    old = await fill(storage, 3, T0)
    clock.now = T0 + timedelta(days=20)
    newer = await fill(storage, 2, clock.now)
    settings = StorageSettings(retention_days=30, raw_retention_days=14)
    runner = Retention(storage, settings, clock=clock)

    first = await runner.run_once()  # day 20: the three raw mails of day 0 go
    assert (first.raw_mails, first.requests) == (3, 0)
    assert all([await storage.show_request(r) for r in old + newer])
    assert storage.compacted == 1

    clock.now = T0 + timedelta(days=31)  # past retention_days, but their SMS were never sent
    second = await runner.run_once()
    assert second.raw_mails == 0
    assert second.requests == 0  # their SMS are still scheduled: kept


async def test_batches_and_pause() -> None:
    """More than BATCH finished requests go in several batches, with a pause after a full one."""
    storage = CountingStorage()
    await storage.open()
    n = BATCH + 7
    ids = await fill(storage, n, T0)
    jobs = await storage.claim_due(T0, limit=n, lease_s=60, owner="w")
    for job in jobs:
        await storage.mark_sent(job.sms_id, provider="p", provider_id="x", answer="", now=T0)
    pauses: list[float] = []

    async def sleep(s: float) -> None:
        pauses.append(s)

    clock = Clock()
    clock.now = T0 + timedelta(days=100)
    runner = Retention(storage, StorageSettings(), clock=clock, sleep=sleep)
    done = await runner.run_once()
    assert done.requests == n
    assert storage.batches == [BATCH, 7]
    assert pauses == [retention_mod.PAUSE_S] * 2  # after the full batch of raw mails, of requests
    assert all([await storage.show_request(r) is None for r in ids])


async def test_zero_keeps_for_ever() -> None:
    """retention_days = 0 and raw_retention_days = 0 delete nothing."""
    storage = CountingStorage()
    await storage.open()
    await fill(storage, 2, T0)
    clock = Clock()
    clock.now = T0 + timedelta(days=10_000)
    forever = StorageSettings(retention_days=0, raw_retention_days=0)
    runner = Retention(storage, forever, clock=clock)
    done = await runner.run_once()
    assert (done.raw_mails, done.requests) == (0, 0)
    assert storage.compacted == 0


async def test_old_inbound_go_with_the_pass() -> None:
    """SMS from phones older than retention_days go in the pass, with the space given back;
    newer ones stay."""
    storage = CountingStorage()
    await storage.open()
    kept = InboundSettings()  # no one to mail them to

    async def from_phone(text: str, at: datetime) -> None:
        sms = InboundIn(provider="p", source="79990000009", destination="A", text=text,
                        received_at=at)  # fmt: skip
        await storage.store_inbound(sms, now=at, settings=kept, domain="x.test")

    await from_phone("old", T0)
    await from_phone("new", T0 + timedelta(days=60))
    clock = Clock()
    clock.now = T0 + timedelta(days=91)
    done = await Retention(storage, StorageSettings(), clock=clock).run_once()
    assert (done.requests, done.inbound) == (0, 1)
    assert storage.compacted == 1
    assert [i.text for i in await storage.list_inbound()] == ["new"]
