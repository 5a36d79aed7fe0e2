"""``[smtp] workers = 2``: one ``mailbridge serve`` parent, two SMTP worker processes.

The daemon runs as a subprocess on a loopback port (the parent reserves it,
both workers listen on it with ``SO_REUSEPORT``). Parallel clients, each mail
on its own connection, spread over both workers; every ``250`` must be one
request in the SQLite file with its SMS, written by the ``file`` provider
exactly once (delivery runs in the parent only). SIGHUP reloads the workers
before ``READY=1``; ``kill -9`` of a worker is logged and the worker started
again; SIGTERM exits 0.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailbridge.errors import StorageError
from mailbridge.storage.sqlite import SqliteStorage
from tests.pg import PgCluster, pg_cluster_fixture  # noqa: F401 (the session's server)

from .conftest import (
    COMMAND_TO,
    PASSWORD,
    SENDER,
    ProcDaemon,
    SmtpTarget,
    base_config,
    command,
    make_mail,
    merge,
    to_toml,
)

CLIENTS = 8
MAILS = 120


def workers_config(tmp: Path) -> dict[str, Any]:
    """The integration config with two workers and info logs (``mail`` lines name the worker)."""
    return merge(
        base_config(tmp, None),
        {"smtp": {"workers": 2}, "logging": {"level": "info", "format": "json"}},
    )


def children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(x) for x in path.read_text().split()}


def wait_children(pid: int, *, n: int, not_in: set[int], timeout_s: float = 20.0) -> set[int]:
    """Wait until ``pid`` has ``n`` children, none of them in ``not_in``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = children(pid)
        if len(now) == n and not now & not_in:
            return now
        time.sleep(0.05)
    raise AssertionError(f"children of {pid}: {children(pid)}")


def running(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still exist."""
    return {p for p in pids if os.path.exists(f"/proc/{p}")}


def log_lines(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def start(proc: ProcDaemon, *, keep_notify: bool = False) -> None:
    """Start the daemon; return once the parent logged ``started`` (every worker listens)."""
    proc.start(30.0, keep_notify=keep_notify)
    deadline = time.monotonic() + 30
    while not any(x.get("event") == "started" for x in log_lines(proc.log)):
        assert time.monotonic() < deadline, proc.log.read_text()[-3000:]
        time.sleep(0.02)


async def send_many(port: int, count: int, *, first: int = 0) -> list[tuple[int, str]]:
    """``count`` mails from ``CLIENTS`` parallel clients, one connection each, one number each."""
    target = SmtpTarget(port=port)
    queue = list(range(first, first + count))
    answers: list[tuple[int, str]] = []

    async def client() -> None:
        while queue:
            i = queue.pop()
            phone = f"+7916{i:07d}"
            answers.append(await target.send(command(phones=phone, mes=f"mail {i}")))

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return answers


def request_ids(answers: list[tuple[int, str]]) -> list[str]:
    ids: list[str] = []
    for code, text in answers:
        assert code == 250, (code, text)
        assert " OK - 1 SMS, ID - " in f" {text}", text
        ids.append(text.rsplit("ID - ", 1)[1].split()[0])
    return ids


async def outbox(tmp: Path, n: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """The file provider's records once there are ``n`` (or the deadline passed)."""
    path = tmp / "outbox.jsonl"
    deadline = time.monotonic() + timeout_s
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
            if len(records) >= n:
                await asyncio.sleep(0.3)  # and no duplicate comes after
                return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        await asyncio.sleep(0.05)
    return records


def stored(db: Path) -> tuple[Counter[str], int]:
    """Request ids in the database (with their count) and the number of SMS rows."""
    with sqlite3.connect(db) as conn:
        ids = Counter(r[0] for r in conn.execute("SELECT request_id FROM requests"))
        (sms,) = conn.execute("SELECT count(*) FROM sms").fetchone()
    return ids, int(sms)


async def test_parallel_mail_stored_and_sent_once(
    tmp_path: Path, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """Every 250 from two workers is one stored request with its SMS, delivered exactly once."""
    proc = proc_daemon(workers_config(tmp_path))
    await asyncio.to_thread(start, proc)
    assert proc.proc is not None
    assert len(await asyncio.to_thread(wait_children, proc.proc.pid, n=2, not_in=set())) == 2

    ids = request_ids(await send_many(proc.port, MAILS))
    assert len(set(ids)) == MAILS
    records = await outbox(tmp_path, MAILS)
    assert Counter(r["request_id"] for r in records) == Counter(ids)
    in_db, sms = stored(tmp_path / "mailbridge.db")
    assert in_db == Counter(ids)
    assert sms == MAILS

    assert await asyncio.to_thread(proc.terminate, 20.0) == 0
    served = Counter(x.get("worker") for x in log_lines(proc.log) if x.get("event") == "mail")
    assert sum(served.values()) == MAILS
    assert set(served) == {0, 1}  # SO_REUSEPORT spread the connections over both


async def test_postgres_storage(
    tmp_path: Path,
    pg_cluster: PgCluster,
    proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
) -> None:
    """Two workers on PostgreSQL: every 250 is one request, delivered exactly once."""
    doc = workers_config(tmp_path)
    doc["storage"] = {"url": pg_cluster.create_database("workers")}
    proc = proc_daemon(doc)
    await asyncio.to_thread(start, proc)
    ids = request_ids(await send_many(proc.port, 60))
    records = await outbox(tmp_path, 60)
    assert Counter(r["request_id"] for r in records) == Counter(ids)
    assert await asyncio.to_thread(proc.terminate, 20.0) == 0
    served = Counter(x.get("worker") for x in log_lines(proc.log) if x.get("event") == "mail")
    assert set(served) == {0, 1}


async def test_reload_reaches_every_worker(
    tmp_path: Path, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """SIGHUP: READY=1 follows once both workers took the new config; a bad one is refused."""
    doc = workers_config(tmp_path)
    proc = proc_daemon(doc)
    notify_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.settimeout(20)
    os.environ["NOTIFY_SOCKET"] = notify_path
    try:
        await asyncio.to_thread(start, proc, keep_notify=True)
    finally:
        del os.environ["NOTIFY_SOCKET"]

    def wait_for(state: str) -> list[str]:
        seen: list[str] = []
        while state not in seen:
            seen.extend(sock.recv(4096).decode().splitlines())
        return seen

    assert "READY=1" in await asyncio.to_thread(wait_for, "READY=1")
    target = SmtpTarget(port=proc.port)
    assert (await target.send(command(login="newbie", psw="pw2")))[1].startswith("2.0.0 ERROR = 2")

    good = merge(doc, {"smtp": {"listen": [f"127.0.0.1:{proc.port}"]}})
    good["accounts"] = [*good["accounts"], {"login": "newbie", "password": "pw2"}]
    proc.config.write_text(to_toml(good))
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGHUP)
    assert "RELOADING=1" in await asyncio.to_thread(wait_for, "READY=1")
    for i in range(20):  # new connections: both workers answer
        text = (await target.send(command(login="newbie", psw="pw2", mes=f"m{i}")))[1]
        assert text.startswith("2.0.0 OK"), text

    proc.config.write_text("[smtp]\nlisten = 5\n")
    proc.proc.send_signal(signal.SIGHUP)
    await asyncio.to_thread(wait_for, "READY=1")
    text = (await target.send(command(login="newbie", psw="pw2", mes="again")))[1]
    assert text.startswith("2.0.0 OK"), text

    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert "STOPPING=1" in await asyncio.to_thread(wait_for, "STOPPING=1")
    assert await asyncio.to_thread(proc.proc.wait, 20) == 0
    assert time.monotonic() - started < 15
    sock.close()
    events = [x for x in log_lines(proc.log) if x.get("event") == "reload_refused"]
    assert len(events) == 1  # refused once by the parent; the workers never saw it


async def test_killed_worker_is_restarted(
    tmp_path: Path, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """kill -9 of a worker: the parent logs it, starts another, and mail keeps flowing."""
    proc = proc_daemon(workers_config(tmp_path))
    await asyncio.to_thread(start, proc)
    assert proc.proc is not None
    parent = proc.proc.pid
    before = await asyncio.to_thread(wait_children, parent, n=2, not_in=set())
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    try:
        after = await asyncio.to_thread(wait_children, parent, n=2, not_in={victim})
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{proc.log.read_text()[-3000:]}") from None
    assert len(after & before) == 1

    deadline = time.monotonic() + 20
    while not any(x.get("event") == "worker_restarted" for x in log_lines(proc.log)):
        assert time.monotonic() < deadline, "no worker_restarted line"
        await asyncio.sleep(0.05)
    lines = log_lines(proc.log)
    exited = [x for x in lines if x.get("event") == "worker_exited"]
    assert [x["pid"] for x in exited] == [victim]
    assert exited[0]["returncode"] == -signal.SIGKILL

    ids = request_ids(await send_many(proc.port, 40, first=1000))
    records = await outbox(tmp_path, 40)
    assert Counter(r["request_id"] for r in records) == Counter(ids)
    assert await asyncio.to_thread(proc.terminate, 20.0) == 0
    assert not await asyncio.to_thread(running, after)


async def test_one_mail_many_per_connection(
    tmp_path: Path, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """Several mails in one session of a worker are each stored and sent once."""
    import aiosmtplib

    proc = proc_daemon(workers_config(tmp_path))
    await asyncio.to_thread(start, proc)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=proc.port, timeout=10)
    await smtp.connect()
    ids: list[str] = []
    for i in range(10):
        raw = make_mail(command(phones=f"+7999555{i:04d}", psw=PASSWORD, mes=f"n{i}"))
        _, text = await smtp.sendmail(SENDER, [COMMAND_TO], raw)
        ids.append(text.rsplit("ID - ", 1)[1].split()[0])
    await smtp.quit()
    records = await outbox(tmp_path, 10)
    assert Counter(r["request_id"] for r in records) == Counter(ids)
    assert await asyncio.to_thread(proc.terminate, 20.0) == 0


async def test_writer_lock_held_fails_instead_of_committing(tmp_path: Path) -> None:
    """A writer lock held elsewhere past busy_timeout fails the write (a 451), storing nothing."""
    db = tmp_path / "locked.db"
    storage = SqliteStorage(db, busy_timeout_s=0.3)
    await storage.open()

    def insert(ip: str) -> Callable[[sqlite3.Connection], object]:
        return lambda c: c.execute("INSERT INTO ip_errors (ip, at) VALUES (?, 0)", (ip,))

    try:
        with (tmp_path / "locked.db-lock").open("rb") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process's writer, mid-commit
            with pytest.raises(StorageError, match="locked"):
                await storage.connector.call(insert("192.0.2.1"))
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        await storage.connector.call(insert("192.0.2.2"))
    finally:
        await storage.close()
    with sqlite3.connect(db) as conn:
        ips = [r[0] for r in conn.execute("SELECT ip FROM ip_errors")]
    assert ips == ["192.0.2.2"]
