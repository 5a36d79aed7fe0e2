"""What storage says about the queue, read at most every few seconds.

Scrapes, health probes and page views read :class:`Figures`; only when its
copy is older than ``max_age_s`` does one of them ask storage again (one
query set at a time, whoever comes first), so a Prometheus scraping every
second and a dozen open status pages cost storage one read each
``max_age_s``. Each read also asks ``next_due`` (an indexed MIN that takes
the path commits take), so ``/readyz`` notices a stuck writer. A read that
fails keeps the previous figures and records the error for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mailbridge.errors import MailbridgeError
from mailbridge.http.metrics import QueueFigures
from mailbridge.storage.base import RequestSummary, Storage

__all__ = ["MAX_AGE_S", "Figures", "RecentRequest"]

#: Figures are read from storage at most this often.
MAX_AGE_S = 5.0

#: Longest wait for storage before a read counts as failed.
READ_TIMEOUT_S = 3.0

#: Requests the status page lists.
RECENT_REQUESTS = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class RecentRequest:
    summary: RequestSummary
    recipients: tuple[str, ...]  # unmasked here; masked by whoever shows them


class Figures:
    """The cached queue figures and last requests; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        *,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._max_age_s = max_age_s
        self._clock = clock
        self._queue: QueueFigures | None = None
        self._queue_lock = asyncio.Lock()
        self._recent: tuple[float, list[RecentRequest]] | None = None
        self._recent_lock = asyncio.Lock()
        self.error: str | None = None  # the last read's failure; None after a good read
        self.reads = 0  # storage reads of the queue figures (tests count them)

    def latest(self) -> QueueFigures | None:
        """The figures as last read (never touches storage)."""
        return self._queue

    async def queue(self) -> QueueFigures | None:
        """Figures at most ``max_age_s`` old (None when storage never answered)."""
        if self._fresh(self._queue.read_at if self._queue else None):
            return self._queue
        async with self._queue_lock:
            if self._fresh(self._queue.read_at if self._queue else None):
                return self._queue
            now = self._clock()
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    # next_due goes the way commits go (SQLite: the writer thread), so an
                    # answer also says the writer is not stuck
                    await self._storage.next_due()
                    stats = await self._storage.queue_stats(datetime.fromtimestamp(now, UTC))
            except (MailbridgeError, TimeoutError, OSError) as exc:
                self.error = str(exc) or type(exc).__name__
                return self._queue
            self.reads += 1
            self.error = None
            self._queue = QueueFigures(
                by_state=dict(stats.by_state),
                oldest_due=stats.oldest_due.timestamp() if stats.oldest_due else None,
                replies_waiting=stats.replies_waiting,
                read_at=now,
            )
            return self._queue

    async def recent(self) -> list[RecentRequest]:
        """The last requests with their recipients, at most ``max_age_s`` old."""
        if self._recent is not None and self._fresh(self._recent[0]):
            return self._recent[1]
        async with self._recent_lock:
            if self._recent is not None and self._fresh(self._recent[0]):
                return self._recent[1]
            now = self._clock()
            out: list[RecentRequest] = []
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    for summary in await self._storage.list_requests(limit=RECENT_REQUESTS):
                        detail = await self._storage.show_request(summary.request_id)
                        recipients = (
                            tuple(dict.fromkeys(s.recipient for s in detail.sms))
                            if detail is not None
                            else ()
                        )
                        out.append(RecentRequest(summary=summary, recipients=recipients))
            except (MailbridgeError, TimeoutError, OSError) as exc:
                self.error = str(exc) or type(exc).__name__
                return self._recent[1] if self._recent is not None else []
            self._recent = (now, out)
            return out

    def _fresh(self, read_at: float | None) -> bool:
        return read_at is not None and self._clock() - read_at < self._max_age_s
