"""Asks providers whose wire format has a status query what became of the SMS they took.

For each provider that offers :class:`~mailbridge.providers.events.StatusQuery`
with ``status_poll_s > 0`` (``smsc``), one task wakes every ``status_poll_s``
seconds, claims up to :data:`BATCH` of that provider's rows in ``sent`` that
were not asked about within the interval and were sent within ``[delivery]
validity_s`` (``Storage.claim_status_checks``; several instances sharing a
PostgreSQL database do not ask twice), asks the provider, and hands each
receipt to the sink: the same storage path as SMPP receipts. A round that
fails (provider down, credentials refused) is logged and tried again at the
next interval; a full batch starts the next round at once.

The same task also stores inbound messages whose missing parts stopped
coming (``StorageEvents.flush_parts``), every :data:`FLUSH_EVERY_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime

from mailbridge.delivery.clock import utcnow
from mailbridge.errors import ProviderError
from mailbridge.log import get_logger
from mailbridge.providers.events import ProviderEvents, SentSms, StatusQuery
from mailbridge.settings import Settings
from mailbridge.storage.base import EventStore

__all__ = ["BATCH", "FLUSH_EVERY_S", "StatusPoller"]

#: SMS asked about in one round per provider.
BATCH = 50
#: How often inbound messages missing parts are looked at.
FLUSH_EVERY_S = 30.0

log = get_logger("mailbridge.status")


class StatusPoller:
    """Status rounds for every provider that can be asked; see the module docstring."""

    def __init__(
        self,
        storage: EventStore,
        events: ProviderEvents,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        flush: Callable[[], object] | None = None,
    ) -> None:
        self._storage = storage
        self._events = events
        self._settings = settings
        self._clock = clock
        self._flush = flush
        self._providers: dict[str, StatusQuery] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.asked = 0

    def set_providers(self, providers: Mapping[str, object]) -> None:
        """Use these providers from now on (start and reload); running rounds finish."""
        self._providers = {
            name: p
            for name, p in providers.items()
            if isinstance(p, StatusQuery) and p.status_poll_s > 0
        }
        if self._tasks or self._flusher is not None:
            self._restart_tasks()

    def reload(self, settings: Settings, providers: Mapping[str, object]) -> None:
        self._settings = settings
        self.set_providers(providers)

    async def start(self) -> None:
        self._stopping.clear()
        self._restart_tasks()
        if self._flush is not None and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="mailbridge-parts")

    async def stop(self) -> None:
        self._stopping.set()
        tasks = list(self._tasks.values())
        if self._flusher is not None:
            tasks.append(self._flusher)
        self._tasks.clear()
        self._flusher = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _restart_tasks(self) -> None:
        for name, task in list(self._tasks.items()):
            if name not in self._providers:
                task.cancel()
                del self._tasks[name]
        for name in self._providers:
            if name not in self._tasks or self._tasks[name].done():
                self._tasks[name] = asyncio.create_task(
                    self._loop(name), name=f"mailbridge-status-{name}"
                )

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _loop(self, name: str) -> None:
        while not self._stopping.is_set():
            provider = self._providers.get(name)
            if provider is None:
                return
            await self._pause(provider.status_poll_s)
            while not self._stopping.is_set():
                try:
                    asked = await self.run_once(name)
                except Exception:  # storage down: log, try again next interval
                    log.exception("status_round_failed", provider=name)
                    break
                if asked < BATCH:
                    break

    async def run_once(self, name: str) -> int:
        """One round for provider ``name``: how many SMS it asked about."""
        provider = self._providers.get(name)
        if provider is None:
            return 0
        now = self._clock()
        rows = await self._storage.claim_status_checks(
            name,
            now=now,
            every_s=provider.status_poll_s,
            max_age_s=self._settings.delivery.validity_s,
            limit=BATCH,
        )
        if not rows:
            return 0
        sent = [
            SentSms(
                sms_id=r.sms_id, recipient=r.recipient, message_id=r.provider_id, sent_at=r.sent_at
            )
            for r in rows
        ]
        try:
            receipts = await provider.query_status(sent, now=now)
        except ProviderError as exc:
            log.warning("status_query_failed", provider=name, error=str(exc))
            return 0
        for receipt in receipts:
            await self._events.receipt(receipt)
        self.asked += len(rows)
        log.info("status_round", provider=name, asked=len(rows), receipts=len(receipts))
        return len(rows)

    async def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            await self._pause(FLUSH_EVERY_S)
            if self._stopping.is_set() or self._flush is None:
                return
            try:
                result = self._flush()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("inbound_flush_failed")
