"""Putting back the rows of dispatchers that are gone: at start, and by heartbeats."""

from __future__ import annotations

import asyncio
import os
import subprocess

from structlog.testing import capture_logs

from mailbridge.core.leases import make_owner
from mailbridge.delivery.clock import ManualClock
from mailbridge.delivery.dispatcher import Dispatcher
from mailbridge.delivery.dispatcher import pid_alive as dispatcher_pid_alive
from mailbridge.delivery.ownership import STALE_S, heartbeats, pid_alive, release_dead
from mailbridge.models import SmsState
from mailbridge.storage.memory import MemoryStorage
from tests.unit.delivery.support import T0, FakeProvider, enqueue_sms, make_settings, states_of

ME = make_owner("gw1", 100, "aaaa")
GONE = make_owner("gw1", 55, "bbbb")
LIVE = make_owner("gw1", 56, "cccc")
ELSEWHERE = make_owner("gw2", 55, "dddd")


def only_56(pid: int) -> bool:
    return pid == 56


async def _claim_one_each(storage: MemoryStorage, *owners: str) -> str:
    """A row claimed (``sending``) by each owner, in order; returns the request id."""
    rid = await enqueue_sms(storage, [f"+7999000000{i}" for i in range(len(owners))])
    for owner in owners:
        (job,) = await storage.claim_due(T0, limit=1, lease_s=600, owner=owner)
        assert job.recipient.startswith("+7999")
    return rid


class TestPidAlive:
    def test_this_process_lives(self) -> None:
        assert pid_alive(os.getpid()) is True

    def test_an_ended_process_does_not(self) -> None:
        child = subprocess.Popen(["true"])
        child.wait()
        assert pid_alive(child.pid) is False

    def test_still_named_by_the_dispatcher_module(self) -> None:
        assert dispatcher_pid_alive is pid_alive


class TestReleaseDead:
    async def test_rows_of_a_gone_owner_come_back_a_live_ones_stay(self) -> None:
        """The dead owner's row is scheduled again at once; the live owner's stays sending."""
        storage = MemoryStorage()
        rid = await _claim_one_each(storage, GONE, LIVE)
        with capture_logs() as logs:
            released = await release_dead(storage, me=ME, single_owner=False, alive=only_56)
        assert released == [GONE]
        assert sorted(await states_of(storage, rid)) == sorted(
            [SmsState.SCHEDULED, SmsState.SENDING]
        )
        assert await storage.claim_owners() == [LIVE]
        lines = [e for e in logs if e["event"] == "released rows of a dispatcher that is gone"]
        assert [e["owner"] for e in lines] == [GONE]

    async def test_single_owner_releases_other_hosts_never_a_live_process(self) -> None:
        """SQLite has one dispatcher: another host's owner is from an earlier start; a
        process of this host that lives, and this dispatcher itself, keep their rows."""
        storage = MemoryStorage()
        rid = await _claim_one_each(storage, ELSEWHERE, LIVE, ME)
        released = await release_dead(storage, me=ME, single_owner=True, alive=only_56)
        assert released == [ELSEWHERE]
        assert sorted(await states_of(storage, rid)) == sorted(
            [SmsState.SCHEDULED, SmsState.SENDING, SmsState.SENDING]
        )
        assert await storage.claim_owners() == sorted([LIVE, ME])
        released = await release_dead(storage, me=ME, single_owner=False, alive=only_56)
        assert released == []  # the same owners under a shared storage: all stay

    async def test_storage_error_is_one_warning_and_releases_nothing(self) -> None:
        storage = MemoryStorage()
        rid = await _claim_one_each(storage, GONE)

        async def broken() -> list[str]:
            raise OSError("disk gone")

        storage.claim_owners = broken  # type: ignore[method-assign]
        with capture_logs() as logs:
            released = await release_dead(storage, me=ME, single_owner=False, alive=only_56)
        assert released == []
        assert await states_of(storage, rid) == [SmsState.SENDING]
        (line,) = [e for e in logs if e["event"] == "could not release rows at start"]
        assert line["log_level"] == "warning"
        assert line["error"] == "OSError"

    async def test_the_dispatcher_releases_through_it(self) -> None:
        """Dispatcher.release_dead passes its own owner and single-owner flag."""
        storage = MemoryStorage()
        rid = await _claim_one_each(storage, GONE, LIVE)
        d = Dispatcher(
            storage,
            {"main": FakeProvider("main")},
            make_settings("main"),
            clock=ManualClock(T0),
            owner=ME,
        )
        assert await d.release_dead(alive=only_56) == [GONE]
        assert sorted(await states_of(storage, rid)) == sorted(
            [SmsState.SCHEDULED, SmsState.SENDING]
        )


class _HeartbeatStore:
    """The four ownership calls of a shared storage, recorded; ``fail`` raises once."""

    def __init__(self, stale: list[str]) -> None:
        self.stale = stale
        self.beats: list[str] = []
        self.asked: list[float] = []
        self.released: list[str] = []
        self.fail: Exception | None = None
        self.round_done = asyncio.Event()

    async def heartbeat(self, owner: str) -> None:
        if self.fail is not None:
            exc, self.fail = self.fail, None
            self.round_done.set()
            raise exc
        self.beats.append(owner)

    async def stale_owners(self, stale_s: float) -> list[str]:
        self.asked.append(stale_s)
        self.round_done.set()
        return list(self.stale)

    async def release_claims(self, owner: str) -> None:
        self.released.append(owner)


class TestHeartbeats:
    async def test_a_round_beats_and_releases_the_stale_but_never_itself(self) -> None:
        store = _HeartbeatStore(stale=[GONE, ME])
        with capture_logs() as logs:
            task = asyncio.create_task(heartbeats(store, ME))  # type: ignore[arg-type]
            await asyncio.wait_for(store.round_done.wait(), 5)
            for _ in range(5):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert store.beats == [ME]
        assert store.asked == [STALE_S]
        assert store.released == [GONE]
        lines = [e for e in logs if e["event"] == "released rows of a dispatcher that is gone"]
        assert [e["owner"] for e in lines] == [GONE]

    async def test_a_storage_error_is_a_warning_and_the_loop_goes_on(self) -> None:
        store = _HeartbeatStore(stale=[])
        store.fail = OSError("connection reset")
        with capture_logs() as logs:
            task = asyncio.create_task(heartbeats(store, ME))  # type: ignore[arg-type]
            await asyncio.wait_for(store.round_done.wait(), 5)
            for _ in range(5):
                await asyncio.sleep(0)
            alive = not task.done()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert alive  # asleep until the next round, not ended by the error
        assert store.released == []
        (line,) = [e for e in logs if e["event"] == "heartbeat failed"]
        assert line["log_level"] == "warning"
        assert line["error"] == "OSError"
