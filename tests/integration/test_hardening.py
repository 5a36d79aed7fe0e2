"""Faults from the hardening issue, reproduced against the real daemon."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailbridge.core.mail import read_mail
from tests.fakes import FakeProviderServer
from tests.fakes.big_body import BodyServer, serving

from .conftest import (
    APIKEY,
    COMMAND_TO,
    PASSWORD,
    ROOT,
    SENDER,
    Daemon,
    DaemonFactory,
    ProcDaemon,
    Smarthost,
    SmtpTarget,
    base_config,
    command,
    make_mail,
    to_toml,
)

ONCALL = "oncall@sms.example.com"
ZABBIX = "zabbix@example.com"


def proc_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(field)


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return s.recv(128)


class TestCatastrophicPattern:
    @pytest.mark.slow
    async def test_deny_text_cannot_freeze_the_daemon(
        self,
        tmp_path: Path,
        smarthost: Smarthost,
        proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
    ) -> None:
        """deny_text (a+)+$ and a text of 40 a and a b: answered, banners flow, SIGTERM ends it."""
        doc = base_config(tmp_path, smarthost.port)
        doc["accounts"][0]["deny_text"] = ["(a+)+$"]
        daemon = proc_daemon(doc)
        await asyncio.to_thread(daemon.start)
        target = SmtpTarget(port=daemon.port)

        evil = make_mail("a" * 40 + "b", subject="x", mail_from=ZABBIX, to=ONCALL)
        started = time.monotonic()
        sending = asyncio.create_task(target.send(evil, mail_from=ZABBIX, rcpts=(ONCALL,)))
        await asyncio.sleep(0.05)
        assert (await asyncio.to_thread(banner, daemon.port)).startswith(b"220")
        code, message = await asyncio.wait_for(sending, 10)
        assert code == 250, message
        assert "OK - " in message
        assert time.monotonic() - started < 5

        code, message = await target.send(
            make_mail("aaaa", subject="x", mail_from=ZABBIX, to=ONCALL),
            mail_from=ZABBIX,
            rcpts=(ONCALL,),
        )
        assert code == 550
        assert "ERROR = 6" in message
        assert await asyncio.to_thread(daemon.terminate, 10) == 0


class TestProviderBodyCap:
    @pytest.mark.slow
    async def test_30_mb_answers_do_not_grow_the_daemon(
        self,
        tmp_path: Path,
        smarthost: Smarthost,
        proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
    ) -> None:
        """Four 30 MB provider answers at once: peak RSS stays within 20 MB, the SMS still go."""
        server = BodyServer(30 * 1024 * 1024, big_first=4)
        async with serving(server) as url:
            doc = base_config(tmp_path, smarthost.port)
            doc["providers"] = [
                {"name": "m", "type": "miatel", "url": url, "username": "u", "password": "p"}
            ]
            doc["routing"] = {"default": ["m"]}
            doc["logging"] = {"level": "info", "format": "json"}
            daemon = proc_daemon(doc)
            await asyncio.to_thread(daemon.start)
            assert daemon.proc is not None
            pid = daemon.proc.pid
            baseline = proc_kib(pid, "VmRSS")
            target = SmtpTarget(port=daemon.port)
            phones = ",".join(f"+7999123456{i}" for i in range(4))
            code, message = await target.send(command(phones, "big answers"))
            assert code == 250, message
            await wait_until(lambda: server.requests >= 8, 20, "the retries after the big answers")
            peak = proc_kib(pid, "VmHWM")
            assert await asyncio.to_thread(daemon.terminate, 10) == 0
        log = daemon.log.read_text()
        print(f"RSS {baseline} KiB at start, peak {peak} KiB with four 30 MB answers")
        assert peak - baseline < 20 * 1024
        assert log.count('"provider answer too large"') == 4
        assert "Traceback" not in log


def run_cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "mailbridge.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


class TestStartupChecks:
    @pytest.mark.parametrize("command_name", ["serve", "check-config"])
    def test_missing_tls_file_named(
        self, tmp_path: Path, tls_files: tuple[Path, Path], command_name: str
    ) -> None:
        """A missing tls_key: serve and check-config stop with one line naming key and path."""
        cert, _ = tls_files
        doc = base_config(tmp_path, None)
        doc["smtp"].update(tls_cert=str(cert), tls_key=str(tmp_path / "gone.pem"))
        config = tmp_path / "c.toml"
        config.write_text(to_toml(doc))
        result = run_cli(command_name, config=config)
        assert result.returncode == 1
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert len(lines) == 1, lines
        assert "smtp.tls_key" in lines[0]
        assert str(tmp_path / "gone.pem") in lines[0]

    @pytest.mark.parametrize("damage", ["garbage", "corrupt pages"])
    @pytest.mark.parametrize("command_name", ["serve", "check-config"])
    def test_bad_database_refused(self, tmp_path: Path, damage: str, command_name: str) -> None:
        """A garbage file or corrupt pages: refused at start with one line naming key and path."""
        doc = base_config(tmp_path, None)
        db = tmp_path / "mailbridge.db"
        if damage == "garbage":
            db.write_bytes(os.urandom(16384))
        else:
            conn = sqlite3.connect(db)
            conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
            conn.execute("CREATE INDEX ib ON t (b)")
            conn.executemany(
                "INSERT INTO t (b) VALUES (?)", [(f"{'x' * 100}{i}",) for i in range(2000)]
            )
            conn.commit()
            conn.close()
            with db.open("r+b") as f:
                f.seek(4096 * 5 + 100)
                f.write(os.urandom(2000))
        config = tmp_path / "c.toml"
        config.write_text(to_toml(doc))
        result = run_cli(command_name, config=config)
        assert result.returncode == 1
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert len(lines) == 1, lines
        assert "storage.url" in lines[0]
        assert str(db) in lines[0]


class NoopProbe:
    """A second session sending NOOP in a loop: the longest wait for an answer is the stall."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.worst_ms = 0.0
        self.count = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        await reader.readline()
        while not self._stop.is_set():
            started = time.perf_counter()
            writer.write(b"NOOP\r\n")
            await writer.drain()
            await reader.readline()
            self.worst_ms = max(self.worst_ms, (time.perf_counter() - started) * 1000)
            self.count += 1
            if self.count % 90 == 0:  # stay under command_call_limit: a new session
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                await reader.readline()
            await asyncio.sleep(0.002)
        writer.close()

    def stop(self) -> None:
        self._stop.set()


class TestLargeRequests:
    @pytest.mark.slow
    async def test_recipient_cap_and_stall(
        self,
        tmp_path: Path,
        smarthost: Smarthost,
        proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
    ) -> None:
        """7 000 numbers: ERROR = 1 at once; 1 000: accepted; neither holds a NOOP long.

        The SMS are scheduled an hour ahead, so what is measured is the mail's
        intake (parsing, 1 000 numbers, the commit), not their delivery.
        """
        doc = base_config(tmp_path, smarthost.port)
        doc["limits"] = {"flood_max": 100000}
        daemon = proc_daemon(doc)
        await asyncio.to_thread(daemon.start)
        target = SmtpTarget(port=daemon.port)
        stalls: dict[int, float] = {}
        for n in (7000, 1000):
            phones = ",".join(f"8999{1000000 + i}" for i in range(n))
            text = command(phones, f"to {n}", id=str(n), time="+60")
            raw = make_mail(text, cte="quoted-printable")
            probe = NoopProbe(daemon.port)
            probing = asyncio.create_task(probe.run())
            await asyncio.sleep(0.2)
            baseline_ms = probe.worst_ms
            code, message = await target.send(raw)
            await asyncio.sleep(0.5)
            probe.stop()
            await probing
            stalls[n] = probe.worst_ms
            print(f"{n} recipients: {message}; worst NOOP {probe.worst_ms:.1f} ms "
                  f"(idle {baseline_ms:.1f} ms, {probe.count} NOOPs)")  # fmt: skip
            assert code == 250
            if n > 1000:
                assert message == "2.0.0 ERROR = 1 (Error in parameters)"
            else:
                assert message == f"2.0.0 OK - {n} SMS, ID - {n}"
        assert await asyncio.to_thread(daemon.terminate, 20) == 0
        assert max(stalls.values()) < 100, stalls


class TestUndecodableFields:
    async def test_literal_escapes_in_subject_are_stored(
        self, start_daemon: DaemonFactory, smarthost: Smarthost
    ) -> None:
        """Encoded word, 8-bit and a literal \\ud83d in the Subject: 250 and a reply, not 451."""
        daemon = await start_daemon()
        subject = "=?utf-8?q?caf=C3=A9?= привет \\ud83d\\ude00 \\U0001F600"
        raw = (
            f"From: {SENDER}\r\nTo: {COMMAND_TO}\r\nSubject: {subject}\r\n"
            "Message-ID: <esc@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + command(options=",,,1")
            + "\r\n"
        ).encode()
        code, message = await daemon.send(raw)
        assert code == 250, message
        assert "OK - 1 SMS" in message
        (reply,) = await smarthost.wait_for(1)
        assert reply.message["Subject"] == "Re: café привет \\ud83d\\ude00 \\U0001F600"

    async def test_unreadable_mail_with_8bit_subject_is_answered(
        self, start_daemon: DaemonFactory, smarthost: Smarthost
    ) -> None:
        """A mail the core cannot read, whose Subject has bytes of no charset: 250 ERROR = 1."""
        daemon = await start_daemon()
        raw = (
            f"From: {SENDER}\r\nTo: {COMMAND_TO}\r\n".encode()
            + b"Subject: \xff\xfe\xed\xa0\xbd \\ud83d\r\n"
            + b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
            + b"Content-Type: image/png\r\n\r\nnot text\r\n--x--\r\n"
        )
        code, message = await daemon.send(raw)
        assert code == 250, message
        assert "ERROR = 1" in message


class TestIdleTimerDuringCommit:
    async def test_slow_commit_is_not_idleness(self, start_daemon: DaemonFactory) -> None:
        """timeout_s 1 s, the database write-locked 2.5 s: the client gets its 250, stored once.

        aiosmtpd's idle timer used to run while the gateway committed: it closed
        the session after 1 s, and the mail was stored when the lock went away
        without the client ever seeing a 250 (so it sends the mail again).
        """
        daemon = await start_daemon({"smtp": {"timeout_s": 1.0}})
        db = daemon.tmp / "mailbridge.db"
        locker = sqlite3.connect(db, timeout=5, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        release = asyncio.get_running_loop().call_later(2.5, locker.execute, "COMMIT")
        try:
            code, message = await daemon.send(command(id="slow-1"))
        finally:
            release.cancel()
            with contextlib.suppress(sqlite3.Error):
                locker.execute("COMMIT")
            locker.close()
        assert code == 250, message
        assert message == "2.0.0 OK - 1 SMS, ID - slow-1"
        detail = await daemon.detail("slow-1")
        assert len(detail.sms) == 1


class TestOutcomeKeptWhileStorageFails:
    @pytest.mark.slow
    async def test_sent_sms_not_sent_again_after_a_failed_write(
        self, start_daemon: DaemonFactory
    ) -> None:
        """mark_sent fails (database locked past the busy timeout): the SMS is not sent twice.

        The provider takes the SMS while the database is write-locked for longer
        than the busy timeout, so recording ``sent`` fails and the row stays
        ``sending`` under a 1 s lease. It used to be claimed and sent again when
        the lease ran out; now the outcome is kept and recorded when the lock goes.
        """
        server = await FakeProviderServer(username="u", password="p").start()
        try:
            server.faults.delay_s = 1.5
            daemon = await start_daemon(
                {
                    "delivery": {"lease_s": 1.0, "retry_first_s": 0.2},
                    "providers": [
                        {
                            "name": "main",
                            "type": "miatel",
                            "url": server.url("miatel"),
                            "username": "u",
                            "password": "p",
                        }
                    ],
                    "routing": {"default": ["main"]},
                }
            )
            code, _ = await daemon.send(command(id="twice-1"))
            assert code == 250
            deadline = time.monotonic() + 10
            while (await daemon.detail("twice-1")).sms[0].state.value != "sending":
                assert time.monotonic() < deadline, "never claimed"
                await asyncio.sleep(0.01)
            locker = sqlite3.connect(daemon.tmp / "mailbridge.db", timeout=5, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # mark_sent waits 5 s for it, then fails
            await asyncio.sleep(12.0)
            locker.execute("COMMIT")
            locker.close()

            async def is_sent() -> bool:
                detail = await daemon.detail("twice-1")
                return detail.sms[0].state.value == "sent"

            deadline = time.monotonic() + 10
            while not await is_sent():
                assert time.monotonic() < deadline, "the outcome was never recorded"
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # a second send would come after the lease (1 s)
            assert len(server.requests_for("miatel")) == 1
        finally:
            await server.stop()


class TestStoredRawMail:
    @pytest.mark.parametrize("cte", ["8bit", "quoted-printable", "base64"])
    async def test_password_masked_in_stored_mail(self, daemon: Daemon, cte: str) -> None:
        """The stored raw mail has the command's password masked, whatever the encoding."""
        raw = make_mail(command(id=f"mask-{cte}"), cte=cte)
        code, message = await daemon.send(raw)
        assert code == 250, message
        conn = sqlite3.connect(daemon.tmp / "mailbridge.db")
        try:
            (stored,) = conn.execute("SELECT raw FROM mails").fetchone()
        finally:
            conn.close()
        assert PASSWORD.encode() not in stored
        assert b"s3cret" not in stored
        text = read_mail(stored).text
        assert PASSWORD not in text
        assert text.startswith("alex:***:")

    async def test_api_key_masked_in_stored_mail(self, daemon: Daemon) -> None:
        """A command with an API key (empty login) is stored with the key masked."""
        code, message = await daemon.send(command(login="", psw=APIKEY, id="mask-key"))
        assert code == 250, message
        conn = sqlite3.connect(daemon.tmp / "mailbridge.db")
        try:
            (stored,) = conn.execute("SELECT raw FROM mails").fetchone()
        finally:
            conn.close()
        assert APIKEY.encode() not in stored
