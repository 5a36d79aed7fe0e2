"""What became of each claimed SMS row, committed to storage (SPEC §4).

:class:`Outcomes` records the result of every attempt the dispatcher makes,
and of the rows it gives up on without one. A row the provider took is
``mark_sent``; a row that was not sent (the provider failed, or every
provider of its route is paused) gets the one pure decision
:func:`mailbridge.core.retry.next_step` — failover (``mark_retry`` due now;
the providers tried in this round are remembered here so the dispatcher
picks another), wait for a breaker's probe, retry after the backoff
(``mark_retry``), or ``mark_failed`` (``failed``/``expired``). Every attempt
logs one ``delivery`` line and reports to the observer. When storage cannot
take an outcome, it is kept in memory and written again with a doubling
pause until storage is back (the row stays in flight meanwhile, so it is
never sent twice because a write failed); what is still kept at stop is
logged as lost, and those rows are sent again after their lease.

The dispatcher hands in three functions of its loop: ``route`` (the provider
order of a row), ``wake`` (look again now) and ``done`` (the row is settled:
free its place in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from mailbridge.core.records import SmsJob
from mailbridge.core.retry import Fault, RetryAction, next_step
from mailbridge.delivery.lanes import Lane
from mailbridge.errors import (
    PermanentProviderError,
    ProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.log import get_logger
from mailbridge.models import AttemptOutcome, SmsState
from mailbridge.observe import Observer
from mailbridge.providers.base import SendResult, Sent
from mailbridge.settings import Settings
from mailbridge.storage.base import DeliveryStore

__all__ = ["UNRECORDED_RETRY_MAX_S", "UNRECORDED_RETRY_S", "Outcomes"]

#: First wait before an outcome storage could not take is tried again (doubling) …
UNRECORDED_RETRY_S = 0.5
#: … up to this (the dispatcher's longest sleep with nothing due).
UNRECORDED_RETRY_MAX_S = 30.0

#: How many rows at most wait for the failover memory (providers tried in this round).
_TRIED_LIMIT = 10_000

_log = get_logger("mailbridge.dispatcher")


class Outcomes:
    """Commits each attempt's outcome and the rows given up on; see the module docstring."""

    def __init__(
        self,
        storage: DeliveryStore,
        settings: Settings,
        lanes: Mapping[str, Lane],
        *,
        rng: Callable[[], float],
        observer: Observer,
        route: Callable[[SmsJob], tuple[str, ...]],
        wake: Callable[[], None],
        done: Callable[[SmsJob], None],
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._lanes = lanes
        self._rng = rng
        self._observer = observer
        # the dispatcher's loop: a row's provider order, look again now, a row settled
        self._route = route
        self._wake = wake
        self._done = done
        #: Providers tried in this round, by SMS id (the dispatcher picks among the rest).
        self.tried: dict[int, set[str]] = {}
        #: Outcomes of sends that storage could not take yet, by SMS id (see _keep_unrecorded).
        self._unrecorded: dict[int, tuple[SmsJob, Callable[[], Awaitable[None]]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def reload(self, settings: Settings, lanes: Mapping[str, Lane]) -> None:
        """Decide with new settings and providers from now on."""
        self._settings = settings
        self._lanes = lanes

    async def settle(
        self, lane: Lane, job: SmsJob, result: SendResult, now: datetime, duration_ms: float
    ) -> None:
        """Log and commit the result of one row's attempt through ``lane``."""
        if isinstance(result, Sent):
            self._attempt_log(
                job, lane.name, AttemptOutcome.SENT, duration_ms, provider_id=result.provider_id
            )
        elif isinstance(result, PermanentProviderError):
            outcome = AttemptOutcome.PERMANENT
            self._attempt_log(job, lane.name, outcome, duration_ms, error=str(result))
        else:
            outcome = AttemptOutcome.TEMPORARY
            self._attempt_log(job, lane.name, outcome, duration_ms, error=str(result))
        try:
            await self._record(lane, job, result, now)
        except Exception as exc:
            self._keep_unrecorded(job, partial(self._record, lane, job, result, now), exc)
            return
        self._done(job)

    async def give_up(
        self, job: SmsJob, provider: str | None, state: SmsState, answer: str, now: datetime
    ) -> None:
        """Final state without an attempt (expired before sending, or no route)."""
        try:
            self._attempt_log(job, provider, AttemptOutcome(state.value), 0.0, error=answer)
            await self._final(job, provider, state, answer, now)
        except Exception:
            _log.exception("could not record a delivery outcome", sms_id=job.sms_id)
        finally:
            self._done(job)

    async def all_open(self, job: SmsJob, order: Sequence[str], now: datetime) -> None:
        """Every provider on the route is open (or was tried): the decision says when to retry."""
        try:
            error = TemporaryProviderError(f"not sent: circuit open for {', '.join(order)}")
            self._attempt_log(job, None, AttemptOutcome.DEFERRED, 0.0, error=str(error))
            await self._not_sent(job, order[0], Fault.CIRCUIT_OPEN, error, now)
        except Exception:
            _log.exception("could not record a delivery outcome", sms_id=job.sms_id)
        finally:
            self._done(job)

    async def close(self) -> None:
        """At stop: one last try for the outcomes still kept; log those that are lost."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._unrecorded:
            await self._flush_unrecorded(once=True)
        if self._unrecorded:
            _log.error(
                "delivery outcomes lost at stop; those SMS are sent again after their lease",
                sms_ids=sorted(self._unrecorded),
            )

    def _attempt_log(
        self,
        job: SmsJob,
        provider: str | None,
        outcome: AttemptOutcome,
        duration_ms: float,
        **extra: Any,
    ) -> None:
        """The one ``delivery`` line (and observer call) of an attempt."""
        self._observer.attempt(provider, outcome.value, duration_ms / 1000)
        _log.info(
            "delivery",
            sms_id=job.sms_id,
            request_id=job.request_id,
            provider=provider,
            outcome=outcome.value,
            duration_ms=round(duration_ms, 1),
            attempt=job.attempts + 1,
            **extra,
        )

    # --- writing --------------------------------------------------------------

    async def _record(self, lane: Lane, job: SmsJob, result: SendResult, now: datetime) -> None:
        if isinstance(result, Sent):
            await self._storage.mark_sent(
                job.sms_id,
                provider=lane.name,
                provider_id=result.provider_id,
                answer=result.answer,
                now=now,
                reply_rate_per_hour=self._settings.reply.reply_rate_per_hour,
            )
            self._observer.transition(lane.name, "sending", "sent")
            self._observer.accepted(lane.name, (now - job.first_due).total_seconds())
            self.tried.pop(job.sms_id, None)
        elif isinstance(result, PermanentProviderError):
            await self._not_sent(job, lane.name, Fault.PERMANENT, result, now)
        else:
            fault = (
                Fault.PROVIDER_UNAVAILABLE
                if isinstance(result, ProviderUnavailableError)
                else Fault.TEMPORARY
            )
            await self._not_sent(job, lane.name, fault, result, now)

    async def _not_sent(
        self, job: SmsJob, provider: str, fault: Fault, error: ProviderError, now: datetime
    ) -> None:
        """Apply :func:`~mailbridge.core.retry.next_step` to a row this try did not send."""
        tried = self.tried.get(job.sms_id) or set()  # providers tried in this round
        tried_before = bool(tried)
        if fault is Fault.TEMPORARY or fault is Fault.PROVIDER_UNAVAILABLE:
            tried.add(provider)
            self.tried[job.sms_id] = tried
            if len(self.tried) > _TRIED_LIMIT:
                self.tried = {job.sms_id: tried}
        order = self._route(job) if fault is not Fault.PERMANENT else ()
        lanes = [self._lanes[name] for name in order]
        reopen = [at for lane in lanes if (at := lane.breaker.reopens_at()) is not None]
        decision = next_step(
            fault,
            error,
            attempt=job.attempts + 1,
            now=now,
            first_due=job.first_due,
            settings=self._settings.delivery,
            rng=self._rng,
            failover=any(lane.name not in tried and lane.breaker.available(now) for lane in lanes),
            reopens_at=min(reopen, default=None),
            tried=tried_before,
        )
        if decision.action is not RetryAction.FAILOVER:
            self.tried.pop(job.sms_id, None)
        if decision.at is not None:  # failover, wait or retry
            await self._storage.mark_retry(
                job.sms_id, provider=provider, due=decision.at, answer=_answer(error), now=now
            )
            self._observer.transition(provider, "sending", "scheduled")
            self._wake()
            return
        state = decision.state or SmsState.FAILED
        await self._final(job, provider, state, _answer(error) or decision.reason, now)

    async def _final(
        self, job: SmsJob, provider: str | None, state: SmsState, answer: str, now: datetime
    ) -> None:
        self.tried.pop(job.sms_id, None)
        await self._storage.mark_failed(
            job.sms_id,
            provider=provider,
            state=state,
            answer=answer,
            now=now,
            reply_rate_per_hour=self._settings.reply.reply_rate_per_hour,
        )
        self._observer.transition(provider, "sending", state.value)

    # --- when storage cannot take an outcome ----------------------------------

    def _keep_unrecorded(
        self, job: SmsJob, record: Callable[[], Awaitable[None]], exc: Exception
    ) -> None:
        """The outcome of a send that storage could not take: kept until it can.

        The row stays in flight at the dispatcher (``done`` is not called), so
        a claim that hands it out again (its lease ran out meanwhile) is
        ignored: it is never sent a second time because a write failed.
        :meth:`_flush_unrecorded` records it when storage is back; only if this
        process ends first is it sent again after its lease (at-least-once).
        """
        self._unrecorded[job.sms_id] = (job, record)
        _log.warning(
            "delivery outcome not recorded, kept until storage is back",
            sms_id=job.sms_id,
            request_id=job.request_id,
            error=type(exc).__name__,
            kept=len(self._unrecorded),
        )
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_unrecorded())

    async def _flush_unrecorded(self, *, once: bool = False) -> None:
        delay = UNRECORDED_RETRY_S
        while self._unrecorded:
            for sms_id, (job, record) in list(self._unrecorded.items()):
                try:
                    await record()
                except Exception:
                    break  # storage still down: wait, then try from the first again
                del self._unrecorded[sms_id]
                _log.info("delivery outcome recorded", sms_id=sms_id)
                self._done(job)
            if once or not self._unrecorded:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, UNRECORDED_RETRY_MAX_S)


def _answer(error: ProviderError) -> str:
    return error.provider_answer or str(error)
