"""Due SMS rows → providers (SPEC §4).

One :class:`Dispatcher` per process. Its loop claims due rows from storage in
batches under a lease (``claim_due``), never more than it can have in flight,
so 100 000 rows scheduled for tomorrow cost nothing until they are due. When
nothing is due it sleeps until the earliest due time (``next_due``), or until
:meth:`Dispatcher.wake` says a new row was committed; the sleep is capped so
that rows left ``sending`` by a crashed peer (their lease ran out), and rows put
back by ``mailbridge queue retry`` from another process, are picked up.

For each claimed row: expired rows (``now > first_due + validity_s``) are
marked ``expired``; the rest go to the first provider of their route
(:func:`mailbridge.core.routing.route`) whose circuit breaker lets traffic through,
in batches of rows with identical text, sender and format (up to the
provider's ``max_batch``), each provider capped by its ``concurrency``
(a semaphore) and ``rate_per_s`` (a token bucket): see
:mod:`mailbridge.delivery.lanes`. What each attempt writes to storage (sent,
failover, retry, failed), and the outcomes kept while storage is down, is
:mod:`mailbridge.delivery.outcomes`; putting back the rows of dispatchers that
are gone (at start, and by heartbeats on a shared storage) is
:mod:`mailbridge.delivery.ownership`.

Time comes from one :class:`~mailbridge.delivery.clock.Clock`: wall time for
due, validity and breakers, monotonic time for rate limits, the coalescing
window and durations; tests pass a :class:`~mailbridge.delivery.clock.ManualClock`.

A row handed out again while this process still holds it (its lease ran out
while it waited for a rate-limited provider) is not sent twice: the fresh
claim only renews the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from mailbridge.core.records import SmsJob
from mailbridge.core.retry import expires_at
from mailbridge.core.routing import route
from mailbridge.delivery.clock import Clock, as_clock
from mailbridge.delivery.lanes import Lane, build_lanes, call, provider_settings
from mailbridge.delivery.outcomes import Outcomes
from mailbridge.delivery.ownership import heartbeats, pid_alive, release_dead
from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.log import get_logger
from mailbridge.models import Format, SmsState
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.providers.base import Provider
from mailbridge.settings import Settings
from mailbridge.storage.base import DeliveryStore

# pid_alive: named here too, where it was first (it lives in delivery/ownership.py)
__all__ = ["COALESCE_S", "MAX_IDLE_S", "Dispatcher", "pid_alive"]

#: Longest sleep with nothing due: rows put back by another process are seen this late at most.
MAX_IDLE_S = 30.0
#: Woken while rows of a partial claim are still in flight: claim again when they are all
#: settled, or this many seconds after that claim, whichever comes first.
COALESCE_S = 0.005


_BatchKey = tuple[str, str, str, int, str | None, str | None, str | None]


class Dispatcher:
    """Sends due SMS rows through the providers; see the module docstring."""

    def __init__(
        self,
        storage: DeliveryStore,
        providers: Mapping[str, Provider],
        settings: Settings,
        *,
        clock: Clock | Callable[[], datetime] | None = None,
        owner: str,
        rng: Callable[[], float] | None = None,
        coalesce_s: float = COALESCE_S,
        single_owner: bool = False,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        """``clock``: a :class:`Clock`, or a function of wall time (monotonic time is then
        the system's); ``coalesce_s``: the coalescing window (see :meth:`_coalesce`);
        ``single_owner``: this is the only dispatcher of its storage (SQLite), so rows any
        other owner left ``sending`` are released at start (see :meth:`release_dead`);
        ``observer``: told each claim, attempt, state change and rate-limit wait."""
        self._single_owner = single_owner
        self._storage = storage
        self._settings = settings
        self._clock = as_clock(clock)
        self._owner = owner
        self._rng = rng or random.random
        self._coalesce_s = coalesce_s
        self._observer = observer
        self._log = get_logger("mailbridge.dispatcher")
        self._lanes: dict[str, Lane] = {}
        self._lanes = build_lanes(providers, settings, self._clock)
        self._formats: dict[str, frozenset[Format]] = {}
        self._refresh_formats()
        self._wake = asyncio.Event()
        #: While the loop sleeps: when it will look again anyway (clock time).
        self._next_look: datetime | None = None
        self._drained = asyncio.Event()  # set when the last row in flight is settled
        self._last_claim = 0.0  # clock.monotonic() of the last claim that reached storage
        self._last_full = True  # whether it got all it asked for (more may be due)
        self._inflight: dict[int, SmsJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._starved = False
        self._unsubscribe: Callable[[], None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._outcomes = Outcomes(
            storage,
            settings,
            self._lanes,
            rng=self._rng,
            observer=observer,
            route=self._route,
            wake=self.wake,
            done=self._done,
        )

    # --- public ---------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Rows claimed by this dispatcher and not yet settled."""
        return len(self._inflight)

    async def release_dead(self, alive: Callable[[int], bool] = pid_alive) -> list[str]:
        """Put back at once the rows that dispatchers which are gone left ``sending``.

        After ``kill -9`` those rows would otherwise wait for their lease
        (``[delivery] lease_s``). Which owners count as gone is
        :func:`~mailbridge.core.leases.releasable`: a process of this host that
        no longer runs, or this process's pid from an earlier start; with a single
        owner (SQLite) any other owner. Never an owner whose process lives.
        Returns the owners released (a storage error is logged: the leases remain).
        See :func:`mailbridge.delivery.ownership.release_dead`.
        """
        return await release_dead(
            self._storage, me=self._owner, single_owner=self._single_owner, alive=alive
        )

    def breaker_states(self, now: datetime) -> dict[str, str]:
        """Each provider's circuit breaker as seen at ``now``: closed, half-open or open."""
        return {name: str(lane.breaker.state(now)) for name, lane in self._lanes.items()}

    async def start(self) -> None:
        """Release the rows of dispatchers that are gone, then start the claim loop."""
        if self._loop_task is None:
            await self.release_dead()
            if not self._single_owner and self._heartbeat_task is None:
                self._heartbeat_task = asyncio.create_task(
                    heartbeats(self._storage, self._owner), name="mailbridge-heartbeat"
                )
            self._stopping = False
            self._loop_task = asyncio.create_task(self._run(), name="mailbridge-dispatcher")
            # a storage shared by several instances (PostgreSQL) wakes us on their commits
            if self._unsubscribe is None:
                self._unsubscribe = self._storage.subscribe_due(self.wake)

    async def stop(self, timeout_s: float) -> None:
        """Claim no more; let sends under way finish within ``timeout_s``, then close providers.

        Rows claimed but not yet handed to a provider, and sends cut off by the
        timeout, stay ``sending``: their lease runs out and they are sent again
        (at-least-once).
        """
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        await self._finish_tasks(self._tasks, timeout_s)
        await self._outcomes.close()
        for lane in self._lanes.values():
            await self._close(lane)

    def wake(self, due: datetime | None = None) -> None:
        """Rows were committed (by the SMTP side, a retry): look again now.

        ``due``: the earliest due time of those rows, when known. Rows due no
        earlier than the loop's next look (it sleeps until the earliest due
        row, at most :data:`MAX_IDLE_S`) need no wake: the loop finds them
        then (an SMS scheduled for tomorrow wakes nothing). Without ``due``
        the loop always wakes.
        """
        planned = self._next_look
        if due is not None and planned is not None and due >= planned:
            return
        self._wake.set()

    def reload(self, settings: Settings, providers: Mapping[str, Provider]) -> None:
        """Use new settings and providers from now on.

        Breaker state carries over by provider name. Providers no longer in use
        are closed once their sends under way have finished.
        """
        old = self._lanes
        self._settings = settings
        self._lanes = build_lanes(providers, settings, self._clock, previous=old)
        self._refresh_formats()
        self._outcomes.reload(settings, self._lanes)
        current = {id(lane.provider) for lane in self._lanes.values()}
        for lane in old.values():
            if id(lane.provider) in current:
                continue
            lane.retired = True
            if lane.active == 0:
                self._spawn(self._close(lane))
        self.wake()

    async def run_once(self) -> int:
        """Claim what is due now and settle it completely; returns how many rows were claimed.

        For tests and tools driving a fake clock; the daemon uses :meth:`start`.
        """
        total = 0
        while True:
            before = set(self._tasks)
            claimed = await self._claim()
            total += claimed
            await asyncio.gather(*(self._tasks - before))
            if claimed == 0:
                return total

    async def idle_timeout(self) -> float:
        """Seconds until the loop would look again with nothing woken (capped)."""
        cap = min(self._settings.delivery.lease_s, MAX_IDLE_S)
        if len(self._inflight) >= self._max_inflight():
            self._starved = True  # woken by _done when half of them are settled
            return cap
        due = await self._storage.next_due()
        if due is None:
            return cap
        wait = (due - self._clock.now()).total_seconds()
        return min(cap, max(wait, 0.0))

    # --- the loop -------------------------------------------------------------

    async def _run(self) -> None:
        errors = 0
        while not self._stopping:
            self._wake.clear()  # before the claim: a wake() from now on is never lost
            try:
                claimed = await self._claim()
                errors = 0
                if claimed and self._last_full and len(self._inflight) < self._max_inflight():
                    continue  # a full batch: there may be more due at once
                # woken during the claim (a row came in): no need to look at next_due
                timeout = 0.0 if self._wake.is_set() else await self.idle_timeout()
            except Exception:
                errors += 1
                timeout = min(MAX_IDLE_S, 0.5 * 2 ** min(errors, 6))
                self._log.exception("dispatcher storage error", retry_in_s=timeout)
            if not self._wake.is_set():
                if timeout <= 0:
                    timeout = 0.05  # due but not claimable yet (a clock edge): do not spin
                else:
                    timeout += 0.001  # land just after the due instant, not just before
                self._next_look = self._clock.now() + timedelta(seconds=timeout)
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._wake.wait()
                finally:
                    self._next_look = None
            if self._wake.is_set():
                await self._coalesce()

    async def _coalesce(self) -> None:
        """Woken while rows of a partial claim are in flight: let new rows gather a moment.

        Under a trickle of new rows each wake would otherwise claim, send and
        mark one row at a time. Waiting until the rows in flight are settled
        (at most ``coalesce_s`` after the last claim) claims everything that
        came in meanwhile at once. With nothing in flight (the queue idle) there
        is no wait.
        """
        if not self._inflight or self._last_full or self._stopping:
            return
        delay = self._last_claim + self._coalesce_s - self._clock.monotonic()
        if delay <= 0:
            return
        self._drained.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._drained.wait()

    def _max_inflight(self) -> int:
        """Rows held at most: a claim batch, or twice what keeps every provider busy.

        The loop claims again when half of them are settled, so a provider's
        concurrency is never starved while a claim is under way.
        """
        slots = sum(
            max(1, provider_settings(self._settings, lane.name).concurrency) * lane.max_batch
            for lane in self._lanes.values()
        )
        return max(self._settings.delivery.batch_size, 2 * slots)

    async def _claim(self) -> int:
        free = self._max_inflight() - len(self._inflight)
        if free <= 0 or self._stopping:
            return 0
        delivery = self._settings.delivery
        now = self._clock.now()
        limit = min(free, delivery.batch_size)
        self._last_claim = self._clock.monotonic()
        jobs = await self._storage.claim_due(
            now, limit=limit, lease_s=delivery.lease_s, owner=self._owner
        )
        self._last_full = len(jobs) >= limit
        fresh = [job for job in jobs if job.sms_id not in self._inflight]
        for job in fresh:
            self._inflight[job.sms_id] = job
        if fresh:
            self._observer.transition(None, "scheduled", "sending", len(fresh))
            self._dispatch(fresh, now)
        return len(fresh)

    def _dispatch(self, jobs: Sequence[SmsJob], now: datetime) -> None:
        groups: dict[_BatchKey, list[SmsJob]] = {}
        for job in jobs:
            if now > expires_at(job.first_due, self._settings.delivery):
                self._spawn(
                    self._outcomes.give_up(job, None, SmsState.EXPIRED, "validity ended", now)
                )
                continue
            order = self._route(job)
            if not order:
                answer = f"no provider carries format {int(job.format)} for this number"
                self._spawn(self._outcomes.give_up(job, None, SmsState.FAILED, answer, now))
                continue
            lane = self._pick(job, order, now)
            if lane is None:
                self._spawn(self._outcomes.all_open(job, order, now))
                continue
            key: _BatchKey = (
                lane.name,
                job.text,
                job.sender,
                int(job.format),
                job.subject,
                job.voice,
                job.param,
            )
            group = groups.setdefault(key, [])
            group.append(job)
            if len(group) >= lane.max_batch:
                self._spawn_send(lane, group)
                del groups[key]
        for key, group in groups.items():
            self._spawn_send(self._lanes[key[0]], group)

    def _route(self, job: SmsJob) -> tuple[str, ...]:
        return route(job.recipient, job.format, self._settings.routing, self._formats)

    def _pick(self, job: SmsJob, order: Sequence[str], now: datetime) -> Lane | None:
        tried = self._outcomes.tried.get(job.sms_id, ())
        for name in order:
            if name in tried:
                continue
            lane = self._lanes[name]
            if lane.breaker.allow(now):
                return lane
        return None

    # --- sending --------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_send(self, lane: Lane, jobs: list[SmsJob]) -> None:
        lane.active += 1
        task: asyncio.Task[None] = asyncio.create_task(self._send(lane, jobs))
        self._tasks.add(task)
        lane.tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lane.tasks.discard)

    async def _send(self, lane: Lane, jobs: list[SmsJob]) -> None:
        try:
            async with lane.semaphore:
                await self._take_tokens(lane, len(jobs))
                if self._stopping:
                    self._release(jobs)  # left for the lease
                    return
                results, whole, duration_ms = await call(lane, jobs, self._clock)
                now = self._clock.now()
                if isinstance(whole, ProviderUnavailableError):
                    if lane.breaker.trip(now):  # once per opening, i.e. once per backoff
                        self._log.error(
                            "provider unavailable",
                            provider=lane.name,
                            error=str(whole),
                            answer=whole.provider_answer,
                            retry_in_s=lane.breaker.reset_s,
                            hint="the provider refuses the gateway: fix its config, then SIGHUP",
                        )
                elif isinstance(whole, TemporaryProviderError):
                    lane.breaker.record_failure(now)
                else:
                    lane.breaker.record_success(now)
                if isinstance(whole, PermanentProviderError):
                    self._log.error(
                        "provider refused the request",
                        provider=lane.name,
                        error=str(whole),
                        answer=whole.provider_answer,
                        hint="check the provider's credentials and URL",
                    )
            if len(jobs) == 1:
                await self._outcomes.settle(lane, jobs[0], results[0], now, duration_ms)
            else:  # one commit group for the batch, not one commit round trip per row
                await asyncio.gather(
                    *(
                        self._outcomes.settle(lane, job, result, now, duration_ms)
                        for job, result in zip(jobs, results, strict=True)
                    )
                )
        finally:
            lane.active -= 1
            if lane.retired and lane.active == 0:
                self._spawn(self._close(lane))

    async def _take_tokens(self, lane: Lane, n: int) -> None:
        while True:
            wait = lane.bucket.take(n, self._clock.monotonic())
            if wait <= 0:
                return
            self._observer.rate_wait(lane.name, wait)
            await asyncio.sleep(wait)

    def _release(self, jobs: Iterable[SmsJob]) -> None:
        for job in jobs:
            self._done(job)

    def _done(self, job: SmsJob) -> None:
        """The row is settled (or left for its lease): free its place, refill when half empty."""
        self._inflight.pop(job.sms_id, None)
        if not self._inflight:
            self._drained.set()
        if self._starved and len(self._inflight) * 2 <= self._max_inflight():
            self._starved = False
            self._wake.set()

    # --- lanes ----------------------------------------------------------------

    def _refresh_formats(self) -> None:
        self._formats = {name: lane.formats for name, lane in self._lanes.items()}

    async def _close(self, lane: Lane) -> None:
        try:
            await lane.provider.aclose()
        except Exception:
            self._log.exception("could not close provider", provider=lane.name)

    async def _finish_tasks(self, tasks: set[asyncio.Task[None]], timeout_s: float | None) -> None:
        """Wait for ``tasks`` (and those they spawn); cancel what is left at the timeout."""
        loop = asyncio.get_running_loop()  # real seconds: this bounds a real wait
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                still = set(tasks)
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
                return
            await asyncio.wait(set(tasks), timeout=left)
