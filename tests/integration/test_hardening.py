"""Faults from the hardening issue, reproduced against the real daemon."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.big_body import BodyServer, serving

from .conftest import ProcDaemon, Smarthost, SmtpTarget, base_config, command, make_mail

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
