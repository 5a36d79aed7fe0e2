"""kill -9 with hundreds of SMS `sending`: after a restart every SMS reaches the provider.

The database is filled before the daemon starts; the fake provider answers
slowly, so when the daemon is killed hundreds of rows are claimed (`sending`)
and dozens of requests are in flight. After the restart (same database, short
lease) every SMS reaches the provider at least once, and only SMS that had
reached the provider while their row was still `sending` at the kill are
sent twice (at-least-once, never a duplicate of a committed `sent`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailbridge.core.encoding import split_text
from mailbridge.models import Format, Message, RouteKind, SmsRequest, SmsState
from mailbridge.settings import LimitsSettings
from mailbridge.storage.base import Intake
from mailbridge.storage.sqlite import SqliteStorage
from tests.fakes import FakeProviderServer

from .conftest import ProcDaemon, base_config

TOTAL = 400
USER, PASSWORD = "client", "pw"


def number(i: int) -> str:
    return f"+7999{i:07d}"


async def fill(db: Path) -> None:
    """TOTAL single-recipient requests, due now, committed before the daemon runs."""
    storage = SqliteStorage(db)
    await storage.open()
    now = datetime.now(UTC)
    limits = LimitsSettings(duplicate_max=10**6, flood_max=10**6)
    try:
        for i in range(TOTAL):
            text = f"crash {i}"
            request = SmsRequest(
                account="alex",
                client_id=None,
                due=now,
                translit=0,
                format=Format.SMS,
                sender="Alex",
                test=0,
                messages=(Message(text=text, recipients=(number(i),), split=split_text(text)),),
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
            )
            await storage.accept(intake, limits=limits, reply_rate_per_hour=0, now=now)
    finally:
        await storage.close()


async def rows_in(db: Path, state: SmsState) -> set[str]:
    """Recipients of the rows in ``state`` (each request has one row)."""
    storage = SqliteStorage(db)
    await storage.open()
    try:
        found: set[str] = set()
        for summary in await storage.list_requests(state=state, limit=TOTAL * 2):
            detail = await storage.show_request(summary.request_id)
            assert detail is not None
            found.update(s.recipient for s in detail.sms if s.state is state)
        return found
    finally:
        await storage.close()


def received(server: FakeProviderServer) -> Counter[str]:
    return Counter("+" + (r.first("to") or "") for r in server.requests_for("miatel"))


@pytest.mark.slow
async def test_kill_9_while_sending(
    tmp_path: Path, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """Every SMS reaches the provider; duplicates only among rows caught in flight."""
    server = await FakeProviderServer(username=USER, password=PASSWORD).start()
    try:
        server.faults.delay_s = 0.4
        doc = base_config(tmp_path, None)
        doc["delivery"] = {"lease_s": 1.0, "batch_size": 300, "retry_first_s": 0.2}
        doc["providers"] = [
            {
                "name": "main",
                "type": "miatel",
                "url": server.url("miatel"),
                "username": USER,
                "password": PASSWORD,
                "concurrency": 50,
            }
        ]
        doc["routing"] = {"default": ["main"]}
        db = tmp_path / "mailbridge.db"
        await fill(db)
        daemon = proc_daemon(doc)
        await asyncio.to_thread(daemon.start)
        deadline = time.monotonic() + 20
        while len(server.requests) < 60:
            assert time.monotonic() < deadline, "the daemon sent nothing"
            await asyncio.sleep(0.02)
        daemon.kill()
        await asyncio.sleep(server.faults.delay_s + 0.3)  # requests in flight get recorded
        reached_before = set(received(server))
        sending_at_kill = await rows_in(db, SmsState.SENDING)
        sent_at_kill = await rows_in(db, SmsState.SENT)
        assert len(sending_at_kill) >= 150, "hundreds of rows should be caught `sending`"

        server.faults.delay_s = 0.0
        await asyncio.to_thread(daemon.start)
        deadline = time.monotonic() + 60
        while len(received(server)) < TOTAL or len(await rows_in(db, SmsState.SENT)) < TOTAL:
            assert time.monotonic() < deadline, f"only {len(received(server))} reached"
            await asyncio.sleep(0.2)
        assert daemon.terminate() == 0

        counts = received(server)
        assert set(counts) == {number(i) for i in range(TOTAL)}
        duplicates = {n for n, c in counts.items() if c > 1}
        assert duplicates <= reached_before & sending_at_kill
        assert not duplicates & sent_at_kill
        assert all(c <= 2 for c in counts.values())
    finally:
        await server.stop()
