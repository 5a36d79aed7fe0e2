"""The HTTP side of `mailbridge serve` as a process: workers' figures, the systemd watchdog."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import (
    ProcDaemon,
    Smarthost,
    SmtpTarget,
    base_config,
    command,
    free_port,
)
from tests.integration.test_http import value
from tests.integration.test_smtp_lifecycle import notify_socket, wait_for_state

pytestmark = pytest.mark.slow


async def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.text()


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


async def ok_mails(port: int, want: float, timeout_s: float = 15.0) -> float:
    deadline = time.monotonic() + timeout_s
    got = -1.0
    while time.monotonic() < deadline:
        _, text = await scrape(port)
        got = value(text, "mailbridge_mails_total", mode="command", result="ok")
        if got >= want:
            return got
        await asyncio.sleep(0.2)
    return got


async def test_workers_figures_reach_the_parent(
    tmp_path: Path,
    smarthost: Smarthost,
    proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
) -> None:
    """With workers = 2 the parent's /metrics counts every worker's mails, also a killed one's."""
    http_port = free_port()
    doc = base_config(tmp_path, smarthost.port)
    doc["smtp"]["workers"] = 2
    doc["http"] = {"listen": [f"127.0.0.1:{http_port}"]}
    proc = proc_daemon(doc)
    await asyncio.to_thread(proc.start, 30.0)
    target = SmtpTarget(port=proc.port)
    for i in range(12):
        code, _ = await target.send(command(phones=f"+7999123{i:04d}", mes=f"m{i}", id=str(i + 1)))
        assert code == 250
    assert await ok_mails(http_port, 12) == 12
    status, body = await scrape(http_port, "/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"]["listeners"]["ok"] is True

    assert proc.proc is not None
    workers = children(proc.proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # its counts must stay in the total
    await asyncio.sleep(0.5)
    assert await ok_mails(http_port, 12) == 12
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the worker is restarted
        status, _ = await scrape(http_port, "/readyz")
        if status == 200 and len(children(proc.proc.pid)) == 2:
            break
        await asyncio.sleep(0.2)
    for i in range(12, 16):
        code, _ = await target.send(command(phones=f"+7999123{i:04d}", mes=f"m{i}", id=str(i + 1)))
        assert code == 250
    assert await ok_mails(http_port, 16) == 16
    assert proc.terminate() == 0


async def test_watchdog_pings_from_the_event_loop(
    tmp_path: Path,
    smarthost: Smarthost,
    proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
) -> None:
    """Under a watchdog (WATCHDOG_USEC) the daemon sends WATCHDOG=1 every half interval."""
    doc = base_config(tmp_path, smarthost.port)
    proc = proc_daemon(doc)
    sock, path = notify_socket(tmp_path)
    os.environ["NOTIFY_SOCKET"] = path
    os.environ["WATCHDOG_USEC"] = "1000000"
    try:
        await asyncio.to_thread(proc.start, 15.0, keep_notify=True)
    finally:
        del os.environ["NOTIFY_SOCKET"]
        del os.environ["WATCHDOG_USEC"]
    seen = await asyncio.to_thread(wait_for_state, sock, "READY=1")
    started = time.monotonic()
    pings = seen.count("WATCHDOG=1")
    while pings < 4:
        pings += (await asyncio.to_thread(wait_for_state, sock, "WATCHDOG=1")).count("WATCHDOG=1")
    assert time.monotonic() - started < 5  # every 0.5 s, not every BEAT_S
    assert proc.terminate() == 0
    sock.close()
