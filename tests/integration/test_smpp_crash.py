"""kill -9 during an SMPP burst: after a restart every SMS reaches the SMSC.

The database is filled before the daemon starts (every request committed, as
after a 250); the fake SMSC answers slowly, so at the kill a window full of
``submit_sm`` is in flight and hundreds of rows are ``sending``. After the
restart every number reaches the SMSC, and only submits that reached it while
their row was still ``sending`` at the kill are there twice (at-least-once,
never a duplicate of a committed ``sent``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailbridge.models import SmsState
from tests.fakes.smsc import FakeSmsc

from .conftest import ProcDaemon, base_config
from .test_delivery_crash import TOTAL, fill, number, rows_in


def reached(smsc: FakeSmsc) -> Counter[str]:
    return Counter("+" + s.destination for s in smsc.submits)


@pytest.mark.slow
async def test_kill_9_during_an_smpp_burst(
    tmp_path: Path, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """Every SMS reaches the SMSC; duplicates only among submits in flight at the kill."""
    async with FakeSmsc(password="pw") as smsc:
        smsc.faults.delay_s = 0.4
        doc = base_config(tmp_path, None)
        doc["delivery"] = {"lease_s": 1.0, "batch_size": 300, "retry_first_s": 0.2}
        doc["providers"] = [
            {
                "name": "smpp",
                "type": "smpp",
                "host": "127.0.0.1",
                "port": smsc.port,
                "system_id": "client",
                "password": "pw",
                "window": 50,
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 0.5,
            }
        ]
        doc["routing"] = {"default": ["smpp"]}
        db = tmp_path / "mailbridge.db"
        await fill(db)
        daemon = proc_daemon(doc)
        await asyncio.to_thread(daemon.start)
        deadline = time.monotonic() + 20
        while len(smsc.submits) < 120:
            assert time.monotonic() < deadline, "the daemon sent nothing"
            await asyncio.sleep(0.02)
        daemon.kill()
        await asyncio.sleep(0.3)  # submits already written get read
        reached_before = set(reached(smsc))
        sending_at_kill = await rows_in(db, SmsState.SENDING)
        sent_at_kill = await rows_in(db, SmsState.SENT)
        assert len(sending_at_kill) >= 100, "many rows should be caught `sending`"
        assert len(sending_at_kill & reached_before) >= 20, "a window in flight at the kill"

        smsc.faults.delay_s = 0.0
        await asyncio.to_thread(daemon.start)
        deadline = time.monotonic() + 60
        while len(reached(smsc)) < TOTAL or len(await rows_in(db, SmsState.SENT)) < TOTAL:
            assert time.monotonic() < deadline, f"only {len(reached(smsc))} reached"
            await asyncio.sleep(0.2)
        assert await asyncio.to_thread(daemon.terminate) == 0  # the SMSC answers meanwhile
        assert smsc.unbinds >= 1  # the second run ended with a clean unbind

        counts = reached(smsc)
        assert set(counts) == {number(i) for i in range(TOTAL)}
        duplicates = {n for n, c in counts.items() if c > 1}
        assert duplicates <= reached_before & sending_at_kill
        assert not duplicates & sent_at_kill
        assert all(c <= 2 for c in counts.values())
