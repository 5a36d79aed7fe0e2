"""Storage faults and housekeeping against the real daemon: a database folder removed while
serving, and retention (what is kept how long, and the disk it takes)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    ClockedDaemonFactory,
    Daemon,
    FakeClock,
    ProcDaemon,
    Smarthost,
    SmtpTarget,
    base_config,
    command,
    make_mail,
)

#: A realistic alert: a Zabbix-like mail of about 1.2 KB.
ALERT = (
    "Problem started at 03:12:44 on 2026.11.30\n"
    "Problem name: High CPU utilization (over 90% for 5m)\n"
    "Host: db-replica-07.prod.example.com\n"
    "Severity: High\n"
    "Operational data: Current utilization: 97.31 %\n"
    "Original problem ID: 81234567\n"
)


def alert_mail(i: int) -> bytes:
    body = command(f"+7999{i + 10000:07d}", f"CPU db-replica-07 97% #{i}", id=f"a{i}")
    padding = "\n-- \n" + (ALERT * 4)[:900]
    return make_mail(body + padding, subject=f"PROBLEM: High CPU #{i}")


def db_bytes(db: Path) -> int:
    """The database with its WAL, checkpointed into it first (what it takes on disk)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


class TestDatabaseFolderRemoved:
    @pytest.mark.slow
    async def test_no_250_after_rm_rf(
        self,
        tmp_path: Path,
        smarthost: Smarthost,
        proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
    ) -> None:
        """rm -rf of the database folder while serving: every mail gets 451, never 250."""
        doc = base_config(tmp_path, smarthost.port)
        folder = tmp_path / "var"
        doc["storage"] = {"url": f"sqlite:///{folder / 'mailbridge.db'}"}
        daemon = proc_daemon(doc)
        await asyncio.to_thread(daemon.start)
        target = SmtpTarget(port=daemon.port)
        code, _ = await target.send(command(id="before-1"))
        assert code == 250
        await asyncio.to_thread(shutil.rmtree, folder)
        answers = [(await target.send(command(id=f"after-{i}")))[0] for i in range(5)]
        assert answers == [451] * 5
        assert await asyncio.to_thread(daemon.terminate, 20) == 0
        assert '"database file gone"' in daemon.log.read_text()


class TestRetention:
    async def test_retention_pass_deletes_and_gives_space_back(
        self, start_clocked_daemon: ClockedDaemonFactory, smarthost: Smarthost
    ) -> None:
        """Raw mails go after 14 days, finished requests after 90; the file shrinks."""
        clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
        daemon: Daemon = await start_clocked_daemon(
            {"limits": {"duplicate_max": 10**6, "flood_max": 10**6}}, clock=clock, reply=False
        )
        db = daemon.tmp / "mailbridge.db"
        n = 400
        empty = db_bytes(db)
        for i in range(n):
            code, message = await daemon.send(alert_mail(i))
            assert (code, message) == (250, f"2.0.0 OK - 1 SMS, ID - a{i}")
        await wait_all_sent(daemon, n)
        full = db_bytes(db)
        per_mail = (full - empty) / n
        retention = daemon.gateway.retention
        assert retention is not None

        clock.advance(15 * 86400)  # raw mails only
        first = await retention.run_once()
        assert (first.raw_mails, first.requests) == (n, 0)
        assert (await daemon.detail("a0")).sms
        after_raw = db_bytes(db)

        clock.advance(80 * 86400)  # 95 days: the finished requests go
        second = await retention.run_once()
        assert (second.raw_mails, second.requests) == (0, n)
        storage = daemon.gateway.storage
        assert storage is not None
        assert await storage.show_request("a0") is None
        after_all = db_bytes(db)
        print(
            f"disk per 1.2 KB alert: {per_mail:.0f} B ({full} B for {n}, empty {empty} B); "
            f"after the raw mails went {after_raw} B; after the requests went {after_all} B"
        )
        assert after_raw < full
        assert after_all < after_raw
        assert after_all < empty + (full - empty) / 5


async def wait_all_sent(daemon: Daemon, n: int, timeout_s: float = 30.0) -> None:
    storage = daemon.gateway.storage
    assert storage is not None
    deadline = time.monotonic() + timeout_s
    while True:
        pending = await storage.list_requests(state=None, limit=n + 10)
        if all(s.states.get("scheduled", 0) + s.states.get("sending", 0) == 0 for s in pending):
            return
        assert time.monotonic() < deadline, "SMS still not sent"
        await asyncio.sleep(0.1)
