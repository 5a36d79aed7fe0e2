"""Prompt resume: after kill -9 and a restart, every acknowledged SMS reaches the provider in 30 s.

The provider answers slowly, so when the daemon is killed many SMS are
claimed (``sending``) under the default 120 s lease. The restarted daemon
must not wait for that lease: the process that held the claims is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from tests.fakes import FakeProviderServer
from tests.pg import PgCluster, pg_cluster_fixture  # noqa: F401 (the session's server)

from .conftest import (
    COMMAND_TO,
    SENDER,
    ProcDaemon,
    Smarthost,
    SmtpTarget,
    base_config,
    command,
    make_mail,
)

USER, PASSWORD = "client", "pw"
RESUME_LIMIT_S = 30.0


def number(i: int) -> str:
    return f"+7999{i:07d}"


def received(server: FakeProviderServer) -> set[str]:
    return {"+" + (r.first("to") or "") for r in server.requests_for("miatel")}


@pytest.mark.slow
async def test_resume_after_kill_9_within_30_s(
    tmp_path: Path, smarthost: Smarthost, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """kill -9 with SMS in flight, default lease: acknowledged SMS all at the provider in 30 s."""
    server = await FakeProviderServer(username=USER, password=PASSWORD).start()
    try:
        server.faults.delay_s = 1.0
        doc = base_config(tmp_path, smarthost.port)
        doc["limits"] = {"duplicate_max": 100000, "flood_max": 100000}
        doc["delivery"] = {"retry_first_s": 0.2}  # lease_s stays at its default (120 s)
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
        daemon = proc_daemon(doc)
        await asyncio.to_thread(daemon.start)

        accepted: set[str] = set()

        async def client(n: int) -> None:
            for i in range(n * 1000, n * 1000 + 10):
                raw = make_mail(command(number(i), f"resume {i}"))
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.port, timeout=5)
                    await smtp.connect()
                    await smtp.ehlo()
                    await smtp.mail(SENDER)
                    await smtp.rcpt(COMMAND_TO)
                    resp = await smtp.data(raw)
                    if resp.code == 250 and "OK - 1 SMS" in resp.message:
                        accepted.add(number(i))
                    smtp.close()

        await asyncio.gather(*(client(n) for n in range(8)))
        assert len(accepted) >= 60
        deadline = time.monotonic() + 10
        while len(server.requests) < 20:  # requests on the wire: rows claimed, not finished
            assert time.monotonic() < deadline, "the daemon sent nothing"
            await asyncio.sleep(0.02)
        daemon.kill()
        await asyncio.sleep(server.faults.delay_s + 0.3)
        missing_at_kill = accepted - received(server)
        assert missing_at_kill, "every SMS already reached the provider: nothing to resume"

        server.faults.delay_s = 0.0
        restarted = time.monotonic()
        await asyncio.to_thread(daemon.start)
        while accepted - received(server):
            waited = time.monotonic() - restarted
            assert waited < RESUME_LIMIT_S, (
                f"{len(accepted - received(server))} acknowledged SMS still not at the provider"
            )
            await asyncio.sleep(0.1)
        resumed_s = time.monotonic() - restarted
        print(f"{len(missing_at_kill)} SMS not yet at the provider at the kill; "
              f"all there {resumed_s:.1f} s after the restart")  # fmt: skip
        assert daemon.terminate() == 0
    finally:
        await server.stop()


@pytest.mark.slow
async def test_postgres_instance_killed_rows_taken_over_within_seconds(
    tmp_path: Path,
    pg_cluster: PgCluster,
    smarthost: Smarthost,
    proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
) -> None:
    """Two instances on PostgreSQL, one killed with SMS in flight: the other sends them
    within seconds (heartbeats), not after the 120 s lease, and never while it lives."""
    url = pg_cluster.create_database("resume")
    server = await FakeProviderServer(username=USER, password=PASSWORD).start()
    try:
        server.faults.delay_s = 2.0
        doc = base_config(tmp_path, smarthost.port)
        doc["storage"] = {"url": url}
        doc["limits"] = {"duplicate_max": 100000, "flood_max": 100000}
        doc["delivery"] = {"retry_first_s": 0.2}  # lease_s stays at its default (120 s)
        doc["providers"] = [
            {
                "name": "main",
                "type": "miatel",
                "url": server.url("miatel"),
                "username": USER,
                "password": PASSWORD,
                "concurrency": 1,  # the victim holds claimed rows it has not sent yet
            }
        ]
        doc["routing"] = {"default": ["main"]}
        victim, survivor = proc_daemon(doc), proc_daemon(doc)
        await asyncio.to_thread(victim.start)
        accepted: set[str] = set()
        for i in range(30):
            code, message = await SmtpTarget(port=victim.port).send(
                make_mail(command(number(i), f"pg resume {i}"))
            )
            if code == 250 and "OK - 1 SMS" in message:
                accepted.add(number(i))
        assert len(accepted) == 30
        deadline = time.monotonic() + 10
        while not await claimed_by_victim(url):
            assert time.monotonic() < deadline, "the victim claimed nothing"
            await asyncio.sleep(0.02)
        await asyncio.to_thread(survivor.start)  # alive, heartbeating, before the kill
        held = await claimed_by_victim(url)
        victim.kill()
        killed = time.monotonic()
        server.faults.delay_s = 0.0
        assert len(held) >= 10, "the victim should hold many unsent rows"
        while accepted - received(server):
            waited = time.monotonic() - killed
            assert waited < RESUME_LIMIT_S, f"{len(accepted - received(server))} still missing"
            await asyncio.sleep(0.2)
        print(
            f"PostgreSQL: {len(held)} rows held by the killed instance; all SMS at the "
            f"provider {time.monotonic() - killed:.1f} s after the kill"
        )
        assert survivor.terminate() == 0
    finally:
        await server.stop()


async def claimed_by_victim(url: str) -> list[str]:
    """Recipients of the rows in ``sending`` (only the victim runs while this is asked)."""
    psycopg = pytest.importorskip("psycopg")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT recipient FROM sms WHERE state = 'sending'")
        return [str(r[0]) for r in await cur.fetchall()]
