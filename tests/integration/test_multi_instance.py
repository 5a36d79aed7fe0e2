"""Three ``mailbridge serve`` processes on one PostgreSQL: sent once, limits global, kill -9.

The proof of the scale-out backend: three daemons (subprocesses, each on its
own loopback port) share one database; parallel SMTP clients spread mails
over them, moving to the next instance when one refuses the connection (as a
sending MTA does with several MX records); one instance is killed with
SIGKILL mid-run and started again. A fake Miatel provider (real HTTP on
loopback) records every SMS it is given, so "delivered exactly once" is
counted at the provider, and a real SMTP sink counts the reply mails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from tests.fakes.provider_server import FakeProviderServer
from tests.pg import PgCluster, pg_cluster_fixture  # noqa: F401 (the session's server)

from .conftest import (
    COMMAND_TO,
    PASSWORD,
    SENDER,
    ProcDaemon,
    Smarthost,
    base_config,
    command,
    make_mail,
)

psycopg = pytest.importorskip("psycopg")

INSTANCES = 3
LOAD = 240  # mails of the load phase, one SMS each to its own number
CLIENTS = 24
BALANCE = 10


class Answer:
    """What one mail got: the SMTP code and text, or nothing (the connection died)."""

    def __init__(self, code: int | None, text: str) -> None:
        self.code = code
        self.text = text

    @property
    def ok(self) -> bool:
        return self.code == 250 and " OK - " in f" {self.text}"

    def error(self) -> int | None:
        """The SMSC error number of the answer, if it is one."""
        if "ERROR = " not in self.text:
            return None
        return int(self.text.split("ERROR = ", 1)[1].split(" ", 1)[0])


async def send(ports: Sequence[int], start: int, raw: bytes) -> Answer:
    """Send ``raw`` to the first instance (from ``start`` round) that takes the connection.

    A refused connection moves on to the next instance; a connection that dies
    after DATA began is an unknown outcome (answer code None), not retried.
    """
    for k in range(len(ports) * 3):
        port = ports[(start + k) % len(ports)]
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10)
        try:
            await smtp.connect()
        except (OSError, aiosmtplib.SMTPException):
            await asyncio.sleep(0.05)
            continue
        try:
            await smtp.ehlo()
            await smtp.mail(SENDER)
            await smtp.rcpt(COMMAND_TO)
            try:
                resp = await smtp.data(raw)
            except aiosmtplib.SMTPResponseException as exc:
                return Answer(exc.code, exc.message)
            return Answer(resp.code, resp.message)
        except (OSError, aiosmtplib.SMTPException):
            return Answer(None, "connection lost")
        finally:
            smtp.close()
    return Answer(None, "no instance took the connection")


def number(i: int) -> str:
    return f"+79993{i:06d}"


async def fetch(url: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query on the shared database."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(query, params)
        return list(await cur.fetchall())


async def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Poll ``check`` (sync or async) until it is true, or fail saying ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_three_instances_one_database(
    tmp_path: Path,
    pg_cluster: PgCluster,
    smarthost: Smarthost,
    proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
) -> None:
    """Every 250 reaches the provider once (the kill's in-flight rows at least once, counted),
    floods, duplicates and the balance are enforced across instances, replies go once."""
    url = pg_cluster.create_database("multi")
    provider = FakeProviderServer()
    await provider.start()
    provider.faults.delay_s = 0.03  # a send takes a while: some are in flight at the kill
    try:
        doc = base_config(tmp_path, smarthost.port)
        doc["storage"] = {"url": url}
        doc["limits"] = {"duplicate_max": 2, "flood_max": 5, "flood_gap_s": 120}
        doc["delivery"].update({"lease_s": 3.0, "batch_size": 20})
        doc["providers"] = [
            {
                "name": "main",
                "type": "miatel",
                "url": provider.url("miatel"),
                "username": "u",
                "password": "p",
                "concurrency": 4,
                "timeout_s": 5.0,
            }
        ]
        doc["routing"] = {"default": ["main"]}
        for account in doc["accounts"]:
            if account["login"] == "poor":
                account["balance"] = BALANCE
        daemons = [proc_daemon(doc) for _ in range(INSTANCES)]
        await asyncio.gather(*(asyncio.to_thread(d.start) for d in daemons))
        ports = [d.port for d in daemons]

        # --- load, with instance 0 killed mid-run and started again --------------------------
        answers: dict[int, Answer] = {}
        todo = iter(range(LOAD))

        async def client(n: int) -> None:
            for i in todo:
                raw = make_mail(command(number(i), f"load {i}"))
                answers[i] = await send(ports, i, raw)
                await asyncio.sleep(0)

        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        await wait_until(lambda: len(answers) >= LOAD // 3, 30, "a third of the load")
        victim = daemons[0]
        assert victim.proc is not None
        owner = f"{socket.gethostname()}:{victim.proc.pid}"
        victim.kill()  # SIGKILL
        in_flight = {
            r[0]
            for r in await fetch(
                url,
                "SELECT s.text FROM sms s WHERE s.state = 'sending' AND s.lease_owner LIKE %s",
                [owner + ":%"],  # host:pid:token
            )
        }
        await wait_until(lambda: len(answers) >= 2 * LOAD // 3, 30, "two thirds of the load")
        await asyncio.to_thread(victim.start)
        await asyncio.gather(*clients)

        accepted = {f"load {i}" for i, a in answers.items() if a.ok}
        unknown = {f"load {i}" for i, a in answers.items() if a.code is None}
        others = {i: (a.code, a.text) for i, a in answers.items() if not a.ok and a.code}
        assert not others, others
        assert len(accepted) >= LOAD - 2 * CLIENTS, "most mails must be answered 250"

        def delivered() -> Counter[str]:
            return Counter(r.first("text") or "" for r in provider.requests_for("miatel"))

        await wait_until(lambda: accepted <= set(delivered()), 40, "every 250 at the provider")

        async def settled() -> bool:
            rows = await fetch(url, "SELECT count(*) FROM sms WHERE state <> 'sent'")
            return bool(rows[0][0] == 0)

        await wait_until(settled, 20, "every row marked sent")
        counts = delivered()
        twice = {text for text, n in counts.items() if n > 1}
        # exactly once, except rows the killed instance held when it died (at least once)
        assert twice <= in_flight, (twice - in_flight, in_flight)
        assert set(counts) <= accepted | unknown
        rows = await fetch(url, "SELECT text, state FROM sms")
        assert {text for text, _ in rows} >= accepted
        print(
            f"\nmulti-instance: {len(accepted)} answered 250, {len(unknown)} cut by the kill, "
            f"{len(in_flight)} in flight at the kill, {len(twice)} of them sent twice"
        )

        # --- limits, each spread over the three instances at once ----------------------------
        provider.requests.clear()
        starts = itertools.count()

        async def burst(bodies: Sequence[str]) -> list[Answer]:
            return await asyncio.gather(
                *(send(ports, next(starts), make_mail(body)) for body in bodies)
            )

        flood = await burst([command("+79994000001", f"flood {i}") for i in range(12)])
        dup = await burst([command("+79994000002", "same text")] * 6)
        poor = await burst(
            [
                command(f"+7999500{i:04d}", f"pay {i}", login="poor", psw="pw")
                for i in range(BALANCE + 8)
            ]
        )
        assert PASSWORD not in "".join(a.text for a in flood + dup + poor)
        assert sorted(a.error() or 0 for a in flood) == [0] * 5 + [8] * 7
        assert sorted(a.error() or 0 for a in dup) == [0] * 2 + [9] * 4
        assert sorted(a.error() or 0 for a in poor) == [0] * BALANCE + [3] * 8
        charged = await fetch(url, "SELECT charged FROM balances WHERE account = 'poor'")
        assert charged == [(BALANCE,)]

        # replies: one per error answer, each sent by exactly one instance
        errors = 7 + 4 + 8
        await smarthost.wait_for(errors, timeout_s=20)
        await asyncio.sleep(0.5)  # a second copy of any reply would land now
        bodies = Counter(mail.message.get_content().strip() for mail in smarthost.received)
        lines = Counter(
            a.text.removeprefix("2.0.0 ") for a in flood + dup + poor if a.error() is not None
        )
        assert len(smarthost.received) == errors
        assert bodies == lines
        await wait_until(lambda: len(provider.requests) >= 5 + 2 + BALANCE, 20, "limit SMS sent")
        await asyncio.sleep(0.5)
        assert len(provider.requests) == 5 + 2 + BALANCE

        for daemon in daemons:
            assert daemon.terminate() == 0
    finally:
        with contextlib.suppress(Exception):
            await provider.stop()
