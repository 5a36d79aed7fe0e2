"""Faults from the hardening issue, reproduced against the real daemon."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ProcDaemon, Smarthost, SmtpTarget, base_config, make_mail

ONCALL = "oncall@sms.example.com"
ZABBIX = "zabbix@example.com"


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
