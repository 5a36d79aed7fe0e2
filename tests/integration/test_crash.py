"""kill -9 under load: every mail answered 250 survives, with all its SMS and one reply."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from mailbridge.storage.factory import open_storage

from .conftest import COMMAND_TO, SENDER, ProcDaemon, Smarthost, base_config, command, make_mail

CLIENTS = 12
PHONES = "+79991234567,+79991234568"


def replied_ids(smarthost: Smarthost) -> list[str]:
    """The request ID quoted by each reply received so far."""
    return [
        mail.message.get_content().strip().rsplit("ID - ", 1)[-1] for mail in smarthost.received
    ]


@pytest.mark.slow
async def test_kill_9_loses_nothing(
    tmp_path: Path, smarthost: Smarthost, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """Parallel clients, kill -9, restart on the same database: nothing answered 250 is lost."""
    doc = base_config(tmp_path, smarthost.port)
    doc["limits"] = {"duplicate_max": 100000, "flood_max": 100000}
    doc["reply"]["reply_rate_per_hour"] = 1_000_000  # every mail is replied (test=1)
    doc["delivery"]["lease_s"] = 1.0  # rows caught mid-send are handed out again after 1 s
    daemon = proc_daemon(doc)
    await asyncio.to_thread(daemon.start)
    accepted: dict[str, str] = {}  # client id -> answer
    stop = asyncio.Event()

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            cid = f"c{n}-{i}"
            raw = make_mail(command(PHONES, f"load {cid}", id=cid, options=",,,1"))
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.port, timeout=5)
                await smtp.connect()
                await smtp.ehlo()
                await smtp.mail(SENDER)
                await smtp.rcpt(COMMAND_TO)
                resp = await smtp.data(raw)
                if resp.code == 250:
                    accepted[cid] = resp.message
                smtp.close()

    tasks = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
    deadline = time.monotonic() + 5
    while len(accepted) < 150 and time.monotonic() < deadline:  # noqa: ASYNC110 - polling
        await asyncio.sleep(0.02)
    daemon.kill()  # SIGKILL, mid-load
    stop.set()
    await asyncio.gather(*tasks)
    assert len(accepted) >= 50, "too little load before the kill"
    assert all(m == f"2.0.0 OK - 2 SMS, ID - {cid}" for cid, m in accepted.items())

    await asyncio.to_thread(daemon.start)
    deadline = time.monotonic() + 20
    while set(accepted) - set(replied_ids(smarthost)):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert daemon.terminate() == 0

    storage = open_storage(doc["storage"]["url"])
    await storage.open()
    try:
        for cid in accepted:
            detail = await storage.show_request(cid)
            assert detail is not None, cid
            assert sorted(s.recipient for s in detail.sms) == PHONES.split(",")
    finally:
        await storage.close()

    by_id: dict[str, int] = {}
    for cid in replied_ids(smarthost):
        by_id[cid] = by_id.get(cid, 0) + 1
    missing = set(accepted) - set(by_id)
    assert not missing
    # A reply whose smarthost 250 came just before the kill may go once more (same Message-ID).
    assert sum(n - 1 for n in by_id.values()) <= 1
