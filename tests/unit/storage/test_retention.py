"""Housekeeping of the storage: AUTH errors, releasing a dead dispatcher's rows, retention,
giving space back, and a database file that is no longer the one opened."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.core.records import InboundIn
from mailbridge.errors import StorageError
from mailbridge.models import InboundState, SmsState
from mailbridge.settings import InboundSettings, LimitsSettings
from mailbridge.storage.sqlite import SqliteStorage
from tests.pg import pg_cluster_fixture  # noqa: F401 (the session's server)
from tests.unit.storage.test_storage import (
    N1,
    T0,
    Backend,
    _opened,
    accept,
    at,
    intake,
    sms_request,
    states,
)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend, opened empty."""
    async with _opened(request.param, request, tmp_path) as opened:
        yield opened


DAY = 86400.0


class TestAuthErrors:
    async def test_auth_errors_start_a_block(self, backend: Backend) -> None:
        """error_block_after errors of one IP block it; another IP is untouched."""
        s = backend.storage
        limits = LimitsSettings(error_block_after=3)
        assert not await s.record_ip_error("192.0.2.9", at(0), limits)
        assert not await s.record_ip_error("192.0.2.9", at(1), limits)
        assert await s.record_ip_error("192.0.2.9", at(2), limits)
        assert await s.ip_blocked("192.0.2.9", at(3), limits)
        assert not await s.ip_blocked("192.0.2.8", at(3), limits)

    async def test_auth_and_mail_errors_add_up(self, backend: Backend) -> None:
        """A mail answered ERROR = 2 and AUTH failures count in the same window."""
        s = backend.storage
        limits = LimitsSettings(error_block_after=2)
        await accept(s, intake(error=2, ip="192.0.2.7"), limits=limits)
        assert await s.record_ip_error("192.0.2.7", at(1), limits)
        assert await s.ip_blocked("192.0.2.7", at(2), limits)

    async def test_old_errors_do_not_count(self, backend: Backend) -> None:
        """Errors outside the window are forgotten."""
        s = backend.storage
        limits = LimitsSettings(error_block_after=2, error_block_window_s=60)
        await s.record_ip_error("192.0.2.6", at(0), limits)
        assert not await s.record_ip_error("192.0.2.6", at(61), limits)


class TestReleaseClaims:
    async def test_dead_owner_rows_claimable_at_once(self, backend: Backend) -> None:
        """Rows a dispatcher holds go back at once when released, long before their lease."""
        s = backend.storage
        await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=120, owner="gw:1:aa")
        assert await s.claim_owners() == ["gw:1:aa"]
        assert await s.claim_due(at(1), limit=10, lease_s=120, owner="gw:2:bb") == []
        await s.release_claims("gw:1:aa")
        assert await s.claim_owners() == []
        again = await s.claim_due(at(1), limit=10, lease_s=120, owner="gw:2:bb")
        assert [j.sms_id for j in again] == [job.sms_id]
        assert await s.claim_owners() == ["gw:2:bb"]

    async def test_other_owner_untouched(self, backend: Backend) -> None:
        """Releasing one owner leaves another owner's rows where they are."""
        s = backend.storage
        await accept(s, intake())
        await s.claim_due(T0, limit=10, lease_s=120, owner="gw:1:aa")
        await s.release_claims("gw:9:zz")
        assert await s.claim_owners() == ["gw:1:aa"]


class TestRetention:
    async def test_raw_mails_pruned_requests_kept(self, backend: Backend) -> None:
        """Raw mails older than the cut go, in batches; their requests stay."""
        s = backend.storage
        old = [await accept(s, intake(now=at(i), ip=f"192.0.2.{i}")) for i in range(3)]
        new, _ = await accept(s, intake(now=at(10 * DAY)))
        assert await s.prune_raw_mails(at(5 * DAY), limit=2) == 2
        assert await s.prune_raw_mails(at(5 * DAY), limit=2) == 1
        assert await s.prune_raw_mails(at(5 * DAY), limit=2) == 0
        for rid, _ in old:
            assert await s.show_request(rid) is not None
        assert await s.show_request(new) is not None

    async def test_finished_requests_pruned(self, backend: Backend) -> None:
        """Old finished requests go with their SMS and attempts; unfinished and new ones stay."""
        s = backend.storage
        done, _ = await accept(s, intake(now=T0))
        (job,) = await s.claim_due(T0, limit=10, lease_s=60, owner="w")
        await s.mark_sent(job.sms_id, provider="p", provider_id="x", answer="ok", now=at(1))
        later = sms_request(due=T0 + timedelta(days=30))
        waiting, _ = await accept(s, intake(later, now=at(2), ip="192.0.2.50"))
        recent, _ = await accept(s, intake(now=at(10 * DAY), ip="192.0.2.51"))
        assert await s.prune_requests(at(5 * DAY), limit=100) == 1
        assert await s.show_request(done) is None
        assert await states(s, waiting) == [SmsState.SCHEDULED]
        assert await s.show_request(recent) is not None
        assert await s.prune_requests(at(5 * DAY), limit=100) == 0

    async def test_sms_sent_in_parts_pruned(self, backend: Backend) -> None:
        """An SMS sent as several parts (a part id each) goes with its request."""
        s = backend.storage
        rid, _ = await accept(s, intake(now=T0))
        (job,) = await s.claim_due(T0, limit=10, lease_s=60, owner="w")
        await s.mark_sent(job.sms_id, provider="p", provider_id="x1,x2", answer="ok", now=at(1))
        assert await s.prune_requests(at(100 * DAY), limit=100) == 1
        assert await s.show_request(rid) is None

    async def test_inbound_answer_stays_when_its_request_goes(self, backend: Backend) -> None:
        """An SMS from a phone linked to a pruned request stays, unlinked."""
        s = backend.storage
        await accept(s, intake(now=T0))
        (job,) = await s.claim_due(T0, limit=10, lease_s=60, owner="w")
        await s.mark_sent(job.sms_id, provider="p", provider_id="a", answer="ok", now=at(1))
        reply = InboundIn(
            provider="p", source=N1.removeprefix("+"), destination="Alex", text="ack",
            received_at=at(100),
        )  # fmt: skip
        window = InboundSettings(reply_window_s=3600.0, mail_to="noc@example.com")
        stored = await s.store_inbound(reply, now=at(100), settings=window, domain="x.example")
        assert stored.inbound_id is not None
        (before,) = await s.list_inbound()
        assert before.request_id is not None
        mails = await s.claim_inbound_mails(at(100), limit=10, lease_s=60)
        for mail in mails:
            await s.mark_inbound_sent(mail.inbound_id, at(101))
        assert await s.prune_requests(at(100 * DAY), limit=100) == 1
        (after,) = await s.list_inbound()
        assert (after.inbound_id, after.request_id, after.text) == (before.inbound_id, None, "ack")

    async def test_queued_reply_keeps_request(self, backend: Backend) -> None:
        """A request whose reply mail is still queued is kept."""
        s = backend.storage
        rid, _ = await accept(s, intake(error=7, now=T0))  # an error: a reply is queued
        assert await s.prune_requests(at(5 * DAY), limit=100) == 0
        assert await s.show_request(rid) is not None


MAILED = InboundSettings(mail_to="noc@example.com")
KEPT = InboundSettings()  # no one to mail to: kept


async def from_phone(
    s: Backend, text: str, when: float, settings: InboundSettings, concat: tuple[int, int, int]
) -> int | None:
    """Store one SMS (or part) from a phone no request went to, at ``when``; its id."""
    sms = InboundIn(
        provider="p", source="79990000009", destination="Alex", text=text,
        received_at=at(when), concat=concat,
    )  # fmt: skip
    stored = await s.storage.store_inbound(sms, now=at(when), settings=settings, domain="x.test")
    return stored.inbound_id


class TestInboundRetention:
    async def test_old_inbound_pruned_once_mailed_or_kept(self, backend: Backend) -> None:
        """SMS from phones older than the cut go once their mail is sent, or when there was
        no one to mail them to; one whose mail still waits, and newer ones, stay."""
        s = backend.storage
        kept = await from_phone(backend, "kept", 0, KEPT, (1, 1, 1))
        mailed = await from_phone(backend, "mailed", 1, MAILED, (2, 1, 1))
        (mail,) = await s.claim_inbound_mails(at(2), limit=10, lease_s=60)
        assert mail.inbound_id == mailed
        await s.mark_inbound_sent(mailed, at(3))
        waiting = await from_phone(backend, "waiting", 4, MAILED, (3, 1, 1))
        recent = await from_phone(backend, "recent", 10 * DAY, KEPT, (4, 1, 1))
        before = {i.inbound_id: i.state for i in await s.list_inbound()}
        assert before == {
            kept: InboundState.KEPT,
            mailed: InboundState.SENT,
            waiting: InboundState.QUEUED,
            recent: InboundState.KEPT,
        }
        assert await s.prune_inbound(at(5 * DAY), limit=1) == 1
        assert await s.prune_inbound(at(5 * DAY), limit=1) == 1
        assert await s.prune_inbound(at(5 * DAY), limit=1) == 0
        assert {i.inbound_id for i in await s.list_inbound()} == {waiting, recent}

    async def test_parts_go_with_their_message(self, backend: Backend) -> None:
        """A message joined from parts goes with its parts: the same parts come in again
        as a new message, not as duplicates of the old one."""
        s = backend.storage
        assert await from_phone(backend, "hel", 0, KEPT, (7, 2, 1)) is None
        first = await from_phone(backend, "lo", 1, KEPT, (7, 2, 2))
        assert first is not None
        assert await s.prune_inbound(at(5 * DAY), limit=10) == 1
        assert await s.list_inbound() == []
        assert await from_phone(backend, "hel", 6 * DAY, KEPT, (7, 2, 1)) is None
        again = await from_phone(backend, "lo", 6 * DAY, KEPT, (7, 2, 2))
        assert again is not None
        (listed,) = await s.list_inbound()
        assert (listed.inbound_id, listed.text) == (again, "hello")


def sizes(db: Path) -> tuple[int, int]:
    """Bytes of the database file and of its WAL (0 when there is none)."""
    wal = Path(f"{db}-wal")
    return db.stat().st_size, wal.stat().st_size if wal.exists() else 0


class TestSqliteSpace:
    async def test_compact_gives_space_back(self, tmp_path: Path) -> None:
        """After a retention pass and compact, the file and its WAL shrink."""
        db = tmp_path / "mb.db"
        s = SqliteStorage(db)
        await s.open()
        try:
            big = b"x" * 20000
            for i in range(300):
                item = replace(intake(now=at(i), ip=f"10.0.{i // 250}.{i % 250}"), raw=big)
                await accept(s, item)
            await s.compact()
            before, _ = sizes(db)
            while await s.prune_raw_mails(at(10 * DAY), limit=50):
                pass
            await s.compact()
            after, wal = sizes(db)
            assert after < before / 2, (before, after)
            assert wal == 0
        finally:
            await s.close()

    async def test_new_database_is_incremental(self, tmp_path: Path) -> None:
        """A database made by this version has auto_vacuum = INCREMENTAL."""
        s = SqliteStorage(tmp_path / "mb.db")
        await s.open()
        await s.close()
        conn = sqlite3.connect(tmp_path / "mb.db")
        try:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        finally:
            conn.close()

    async def test_older_database_switched(self, tmp_path: Path) -> None:
        """A database of an earlier version (no incremental vacuum) is switched, data kept."""
        db = tmp_path / "old.db"
        s = SqliteStorage(db)
        await s.open()
        rid, _ = await accept(s, intake())
        await s.close()
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        conn.close()
        s = SqliteStorage(db)
        await s.open()
        try:
            assert await s.show_request(rid) is not None
        finally:
            await s.close()
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        finally:
            conn.close()


class TestDatabaseFileGone:
    @pytest.mark.parametrize("how", ["folder removed", "file replaced"])
    async def test_commit_refused(self, tmp_path: Path, how: str) -> None:
        """The file at the path is not the one opened: every write is a StorageError."""
        folder = tmp_path / "var"
        folder.mkdir()
        db = folder / "mb.db"
        s = SqliteStorage(db)
        await s.open()
        try:
            await accept(s, intake())
            if how == "folder removed":
                for name in os.listdir(folder):
                    os.unlink(folder / name)
                folder.rmdir()
            else:
                os.rename(db, folder / "moved.db")
                db.write_bytes(b"")
            with pytest.raises(StorageError, match="gone or replaced"):
                await accept(s, intake(now=at(5), ip="192.0.2.99"))
        finally:
            await s.close()


class TestCancelledWork:
    async def test_work_cancelled_before_it_ran_is_not_run(self, tmp_path: Path) -> None:
        """An accept whose caller gave up while it waited for the writer commits nothing."""
        s = SqliteStorage(tmp_path / "mb.db")
        await s.open()
        try:
            entered, gate = threading.Event(), threading.Event()

            def hold(_conn: sqlite3.Connection) -> bool:
                entered.set()
                return gate.wait(10)

            blocker = asyncio.ensure_future(s.connector.call(hold, write=False))
            await asyncio.to_thread(entered.wait, 10)
            pending = asyncio.ensure_future(accept(s, intake(client_id="gone-1")))
            await asyncio.sleep(0.05)
            pending.cancel()
            gate.set()
            await blocker
            with pytest.raises(asyncio.CancelledError):
                await pending
            await accept(s, intake(now=at(1), ip="192.0.2.3"))  # the writer goes on
            assert await s.show_request("gone-1") is None
        finally:
            await s.close()


class TestHeartbeats:
    async def test_stale_owner_found_and_released(self, backend: Backend) -> None:
        """An owner not heard of is stale; releasing it frees its rows and forgets it."""
        s = backend.storage
        await accept(s, intake())
        await s.claim_due(T0, limit=10, lease_s=120, owner="gw:1:aa")
        await s.heartbeat("gw:1:aa")
        await s.heartbeat("gw:2:bb")
        assert await s.stale_owners(60.0) == []
        await asyncio.sleep(0.3)
        await s.heartbeat("gw:2:bb")
        stale = await s.stale_owners(0.2)
        if backend.name == "sqlite":
            assert stale == []  # one dispatcher per file: released at start instead
            return
        assert stale == ["gw:1:aa"]
        await s.release_claims("gw:1:aa")
        assert await s.stale_owners(0.2) == []
        assert await s.claim_owners() == []
