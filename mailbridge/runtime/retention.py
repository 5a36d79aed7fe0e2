"""Retention: what the gateway keeps, and for how long (``[storage] retention_days``).

The process that runs the dispatcher runs one pass at start-up (after
:data:`FIRST_PASS_S`) and then every :data:`EVERY_S`:

1. raw mails of requests received more than ``raw_retention_days`` ago are
   deleted (the request, its SMS and replies stay);
2. requests received more than ``retention_days`` ago whose SMS and reply
   mails are all finished are deleted with their SMS, attempts, replies and
   raw mail (a request with an SMS still scheduled or sending, or a reply
   still queued, is kept until it is finished); so are SMS from phones stored
   more than ``retention_days`` ago whose mail was sent, or that had no one
   to mail them to;
3. when anything was deleted, the storage gives the space back
   (:meth:`~mailbridge.storage.base.RetentionStore.compact`: SQLite frees its
   pages and truncates its WAL; PostgreSQL's autovacuum reuses them).

Deletions go in batches of :data:`BATCH` requests, each its own short
transaction, with a pause between them, so intake goes on meanwhile (one
batch held the writer about as long as a few intakes, see docs/operations.md).
Either age set to 0 keeps that data for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbridge.log import get_logger
from mailbridge.runtime.tasks import cancel_and_wait
from mailbridge.settings import StorageSettings
from mailbridge.storage.base import RetentionStore

__all__ = ["BATCH", "EVERY_S", "FIRST_PASS_S", "Retention", "RetentionPass"]

#: Requests (or raw mails) deleted per transaction.
BATCH = 200
#: Pause between two batches, so that intake's transactions go first.
PAUSE_S = 0.02
#: Time between passes, and before the first one after start-up.
EVERY_S = 600.0
FIRST_PASS_S = 30.0

_log = get_logger("mailbridge.retention")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPass:
    """What one pass deleted."""

    raw_mails: int
    requests: int
    inbound: int = 0  # SMS from phones
    duration_ms: float


class Retention:
    """Runs the passes above against ``storage``; ``clock`` gives now (UTC)."""

    def __init__(
        self,
        storage: RetentionStore,
        settings: StorageSettings,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def reload(self, settings: StorageSettings) -> None:
        self._settings = settings

    async def run_once(self) -> RetentionPass:
        """One pass: raw mails, then finished requests and SMS from phones, then give the
        space back."""
        started = time.perf_counter()
        now = self._clock()
        keep, raw_keep = self._settings.retention_days, self._settings.raw_retention_days
        raw = requests = inbound = 0
        if raw_keep:
            raw = await self._drain(self._storage.prune_raw_mails, now - timedelta(days=raw_keep))
        if keep:
            requests = await self._drain(self._storage.prune_requests, now - timedelta(days=keep))
            inbound = await self._drain(self._storage.prune_inbound, now - timedelta(days=keep))
        if raw or requests or inbound:
            await self._storage.compact()
        done = RetentionPass(
            raw_mails=raw,
            requests=requests,
            inbound=inbound,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if raw or requests or inbound:
            _log.info(
                "retention",
                raw_mails_deleted=raw,
                requests_deleted=requests,
                inbound_deleted=inbound,
                duration_ms=done.duration_ms,
            )
        return done

    async def _drain(self, prune: Callable[..., Awaitable[int]], before: datetime) -> int:
        total = 0
        while True:
            n = await prune(before, limit=BATCH)
            total += n
            if n < BATCH:
                return total
            await self._sleep(PAUSE_S)

    def start(self, *, first_s: float = FIRST_PASS_S, every_s: float = EVERY_S) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(first_s, every_s), name="mailbridge-retention"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self, first_s: float, every_s: float) -> None:
        await self._sleep(first_s)
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # storage down: the next pass tries again
                _log.warning("retention_failed", error=type(exc).__name__)
            await self._sleep(every_s)
