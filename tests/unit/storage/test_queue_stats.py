"""``Storage.queue_stats`` on every backend: what metrics, /readyz and the status page read."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from mailbridge.storage.sqlite import SqliteStorage
from tests.unit.storage.test_storage import (  # noqa: F401 (fixtures)
    N1,
    N2,
    N3,
    T0,
    Backend,
    accept,
    at,
    backend,
    intake,
    message,
    pg_cluster_fixture,
    sms_request,
)


async def test_counts_states_oldest_due_and_replies(backend: Backend) -> None:  # noqa: F811
    """Rows by state, the oldest scheduled row already due, reply mails not yet sent."""
    storage = backend.storage
    empty = await storage.queue_stats(at(0))
    assert empty.by_state == {}
    assert empty.oldest_due is None
    assert empty.replies_waiting == 0

    await accept(storage, intake(sms_request(message(recipients=(N1, N2)), due=at(5))))
    await accept(storage, intake(sms_request(message(recipients=(N3,)), due=at(3600)), now=at(1)))
    await accept(storage, intake(error=7, now=at(2)))  # an error: its reply mail waits
    stats = await storage.queue_stats(at(10))
    assert stats.by_state == {"scheduled": 3}
    assert stats.oldest_due == at(5)  # the one due in an hour is not due yet
    assert stats.replies_waiting == 1
    assert (await storage.queue_stats(at(1))).oldest_due is None

    jobs = await storage.claim_due(at(10), limit=1, lease_s=60, owner="t")
    assert len(jobs) == 1
    await storage.mark_sent(jobs[0].sms_id, provider="p", provider_id="x", answer="ok", now=at(11))
    jobs = await storage.claim_due(at(12), limit=1, lease_s=60, owner="t")
    stats = await storage.queue_stats(at(12))
    assert stats.by_state == {"scheduled": 1, "sending": 1, "sent": 1}
    assert stats.oldest_due is None  # the last scheduled one is due in an hour
    assert at(12) > T0


async def test_sqlite_counts_beside_a_busy_writer(tmp_path: Path) -> None:
    """SQLite reads the figures on its own connection: a held writer does not delay them."""
    storage = SqliteStorage(tmp_path / "mb.db")
    await storage.open()
    await accept(storage, intake(sms_request(message(recipients=(N1,)), due=at(5))))
    entered, gate = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection) -> bool:
        entered.set()
        return gate.wait(10)

    blocker = asyncio.ensure_future(storage.connector.call(hold, write=False))
    try:
        await asyncio.to_thread(entered.wait, 10)
        stats = await asyncio.wait_for(storage.queue_stats(at(10)), 5)
        assert stats.by_state == {"scheduled": 1}
        assert not blocker.done()  # the writer was still held meanwhile
    finally:
        gate.set()
        await blocker
        await storage.close()
