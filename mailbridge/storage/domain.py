"""The storage rules of intake and delivery, written once for every backend.

:class:`Store` is the whole :class:`~mailbridge.storage.base.Storage`
contract, made of one part per job over the same
:class:`~mailbridge.storage.connector.Connector` (SQLite, PostgreSQL,
memory), which gives it a transaction and runs its named queries. This
module holds the Store itself (opening, wake-ups) and what the SMTP handler
and the dispatcher do: what an intake reads and writes (the plan of
:mod:`mailbridge.storage.common`, the writes in
:mod:`mailbridge.storage.intake`), the state changes of SMS rows, the
follow-up reply of ``mark_failed``, the claims' owners and heartbeats. The
other parts: receipts and SMS from phones
(:mod:`~mailbridge.storage.events_domain`), the mailer's queue of reply and
inbound mails (:mod:`~mailbridge.storage.mail_queue`), operators and
monitoring (:mod:`~mailbridge.storage.admin`), retention
(:mod:`~mailbridge.storage.retention`).

To add an operation: a method in the part of its job that runs named queries
inside ``self._connector.transaction``, and the queries in each
``<dialect>_queries.sql`` (and a function of that name in the memory backend's
``memory_*`` modules).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from mailbridge.core import limits as lim
from mailbridge.core.answers import error_line
from mailbridge.core.records import (
    AcceptResult,
    Intake,
    ReplyDraft,
    SmsJob,
)
from mailbridge.models import AttemptOutcome, Encoding, Format, SmsState
from mailbridge.observe import Observer
from mailbridge.settings import LimitsSettings
from mailbridge.storage.admin import QueueAdmin
from mailbridge.storage.base import Callback, Unsubscribe
from mailbridge.storage.batching import Coalescer
from mailbridge.storage.common import (
    FOLLOWUP_ERROR,
    failure_outcome,
    shorten,
    to_ts,
    validate_intake,
)
from mailbridge.storage.connector import Channel, Connector, Row, Tx
from mailbridge.storage.events_domain import (
    DEFAULT_REPLY_RATE,
    EventsStore,
    apply_kept_receipts,
    message_ids,
    receipt_lock,
)
from mailbridge.storage.intake import accept_intake, count_replies, insert_reply
from mailbridge.storage.mail_queue import MailQueue
from mailbridge.storage.mixin import OfConnector
from mailbridge.storage.retention import Pruning

__all__ = ["Store"]


class _Sent(NamedTuple):
    """One ``mark_sent`` waiting for its transaction."""

    sms_id: int
    provider: str
    provider_id: str
    answer: str
    now: datetime
    rate: int


#: The states ``mark_failed`` takes.
_FINAL = (SmsState.FAILED, SmsState.EXPIRED)


class _MailRefused(Exception):
    """Raised inside ``accept_all``'s transaction so that nothing of the mail is written."""

    def __init__(self, result: AcceptResult) -> None:
        super().__init__(result.line)
        self.result = result


class Store(EventsStore, MailQueue, QueueAdmin, Pruning):
    """The :class:`~mailbridge.storage.base.Storage` contract over one connector: intake
    and delivery here, the other jobs in the parts it is mixed from (module docstring)."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        # mark_sent calls under way together share one transaction (group commit)
        self._sent: Coalescer[_Sent] = Coalescer(self._write_sent)

    observer: OfConnector[Observer] = OfConnector(
        "Told each transaction's duration (storage commit latency); set before ``open``."
    )

    async def open(self) -> None:
        """Connect, create or migrate the schema."""
        await self._connector.open()

    async def close(self) -> None:
        """Finish what is under way and disconnect."""
        await self._connector.close()

    def subscribe_due(self, callback: Callback) -> Unsubscribe:
        """Call ``callback`` (on the event loop) whenever another process commits SMS rows
        that are due, or puts rows back with ``queue retry`` (PostgreSQL); also once
        after each (re)connection of the listener. Returns a function that unsubscribes."""
        return self._connector.subscribe(Channel.DUE, callback)

    def subscribe_replies(self, callback: Callback) -> Unsubscribe:
        """Like :meth:`subscribe_due`, for reply mails queued by another process, and for
        the follow-up replies this storage queues itself (``mark_failed``). Replies
        queued by ``accept`` are announced by the SMTP handler itself."""
        return self._connector.subscribe(Channel.REPLIES, callback)

    # --- intake -----------------------------------------------------------------

    async def ip_blocked(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Whether ``ip`` is inside an error block."""
        to_ts(now)

        async def work(tx: Tx) -> datetime | None:
            row = await tx.one("ip_block", {"ip": ip})
            return None if row is None else tx.moment(row[0])

        return lim.ip_blocked(await self._connector.transaction(work, write=False), now)

    async def record_blocked(self, ip: str, now: datetime) -> None:
        """Count a request refused with ERROR = 4."""
        await self._write("record_blocked", {"ip": ip})

    async def record_ip_error(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Count an error for ``ip`` outside a mail (AUTH); True when it starts a block."""
        since = lim.since(now, limits.error_block_window_s)

        async def work(tx: Tx) -> bool:
            await tx.lock([("ip", ip)])
            rows = await tx.all("ip_error_times", {"ip": ip, "since": since, "now": now})
            until = lim.block_until_after_error([tx.moment(r[0]) for r in rows], now, limits)
            await tx.run("prune_ip_errors", {"ip": ip, "before": since})
            await tx.run("insert_ip_error", {"ip": ip, "at": now})
            if until is not None:
                await tx.run("prune_ip_blocks", {"ip": ip, "now": now})
                await tx.run("save_ip_block", {"ip": ip, "until": until})
            return until is not None

        return await self._connector.transaction(work)

    async def accept(
        self, intake: Intake, *, limits: LimitsSettings, reply_rate_per_hour: int, now: datetime
    ) -> AcceptResult:
        """Commit one mail and everything derived from it (see the protocol)."""
        validate_intake(intake)
        to_ts(now)
        # a partial, not a closure awaiting accept_intake: one coroutine less per mail
        work = partial(
            accept_intake,
            intake=intake,
            limits=limits,
            reply_rate_per_hour=reply_rate_per_hour,
            now=now,
        )
        result = await self._connector.transaction(work)
        if result.sms_count:
            self._connector.notify(Channel.DUE, here=False)
        if result.reply_queued:
            self._connector.notify(Channel.REPLIES, here=False)
        self._connector.after_intake(limits, now)
        return result

    async def accept_all(
        self,
        intakes: Sequence[Intake],
        *,
        limits: LimitsSettings,
        reply_rate_per_hour: int,
        now: datetime,
    ) -> list[AcceptResult]:
        """Several intakes of one mail in one transaction, all or none (see the protocol)."""
        for intake in intakes:
            validate_intake(intake)
        to_ts(now)

        async def work(tx: Tx) -> list[AcceptResult]:
            results: list[AcceptResult] = []
            for intake in intakes:
                result = await accept_intake(
                    tx, intake, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
                )
                if result.error is not None:
                    raise _MailRefused(result)  # rolls the whole transaction back
                results.append(result)
            return results

        try:
            results = await self._connector.transaction(work)
        except _MailRefused as refused:
            return [refused.result]
        if any(r.sms_count for r in results):
            self._connector.notify(Channel.DUE, here=False)
        if any(r.reply_queued for r in results):
            self._connector.notify(Channel.REPLIES, here=False)
        self._connector.after_intake(limits, now)
        return results

    # --- delivery ---------------------------------------------------------------

    async def next_due(self) -> datetime | None:
        """Earliest time a row becomes claimable (indexed MINs)."""
        return await self._read_time("next_due")

    async def claim_due(
        self, now: datetime, *, limit: int, lease_s: float, owner: str
    ) -> list[SmsJob]:
        """Lease up to ``limit`` due rows, oldest due first; each row goes to one claimer."""
        if limit <= 0:
            return []
        params = {
            "now": now,
            "limit": limit,
            "owner": owner,
            "until": now + timedelta(seconds=lease_s),
        }
        to_ts(now)

        async def work(tx: Tx) -> list[SmsJob]:
            rows = await tx.claim("claim_due", params)
            return [_job(tx, r) for r in sorted(rows, key=lambda r: (r[9], r[0]))]

        return await self._connector.transaction(work)

    async def mark_sent(
        self,
        sms_id: int,
        *,
        provider: str,
        provider_id: str,
        answer: str,
        now: datetime,
        reply_rate_per_hour: int = DEFAULT_REPLY_RATE,
    ) -> None:
        """The provider took the SMS (only a row in ``sending`` moves); receipts kept for
        its id are applied (``reply_rate_per_hour`` bounds the not-delivered mail one may
        queue).

        Calls under way at the same time are committed together, in one
        transaction (:class:`~mailbridge.storage.batching.Coalescer`); each
        returns once its row is committed.
        """
        to_ts(now)
        await self._sent.add(_Sent(sms_id, provider, provider_id, answer, now, reply_rate_per_hour))

    async def _write_sent(self, items: Sequence[_Sent]) -> None:
        async def work(tx: Tx) -> bool:
            # only rows in sending move; the same row twice: the first moves it
            ids = list(dict.fromkeys(item.sms_id for item in items))
            sending = {r[0]: r[1] for r in await tx.all("sending_ids", {"ids": ids})}
            moving: list[tuple[_Sent, int]] = []
            for item in items:
                request_pk = sending.pop(item.sms_id, None)
                if request_pk is not None:
                    moving.append((item, request_pk))
            if not moving:
                return False
            # the receipt locks of the whole batch at once, in key order (no deadlock)
            await tx.lock(
                receipt_lock(m.provider, i) for m, _ in moving for i in message_ids(m.provider_id)
            )
            await tx.run_many(
                "insert_attempt",
                [
                    {
                        "sms_id": m.sms_id,
                        "at": m.now,
                        "provider": m.provider,
                        "outcome": AttemptOutcome.SENT,
                        "answer": shorten(m.answer),
                    }
                    for m, _ in moving
                ],
            )
            await tx.run_many(
                "set_sent",
                [
                    {
                        "id": m.sms_id,
                        "provider": m.provider,
                        "provider_id": m.provider_id,
                        "now": m.now,
                    }
                    for m, _ in moving
                ],
            )
            any_kept = await tx.one("any_kept_receipt", {}) is not None
            queued = False
            for m, request_pk in moving:
                queued = (
                    await apply_kept_receipts(
                        tx,
                        m.sms_id,
                        request_pk,
                        provider=m.provider,
                        provider_id=m.provider_id,
                        now=m.now,
                        rate=m.rate,
                        any_kept=any_kept,
                    )
                    or queued
                )
            return queued

        if await self._connector.transaction(work):
            self._connector.notify(Channel.REPLIES, here=True)

    async def mark_retry(
        self, sms_id: int, *, provider: str, due: datetime, answer: str, now: datetime
    ) -> None:
        """A transient failure: back to ``scheduled`` at ``due``, attempt recorded."""
        to_ts(due)
        to_ts(now)

        async def work(tx: Tx) -> None:
            if await tx.one("sending_row", {"id": sms_id}) is None:
                return
            await _attempt(tx, sms_id, provider, AttemptOutcome.TEMPORARY, answer, now)
            params = {"id": sms_id, "due": due, "provider": provider, "error": shorten(answer)}
            await tx.run("set_retry", params)

        await self._connector.transaction(work)

    async def mark_failed(
        self,
        sms_id: int,
        *,
        provider: str | None,
        state: SmsState,
        answer: str,
        now: datetime,
        reply_rate_per_hour: int,
    ) -> None:
        """Final failure: refund the parts, queue the one follow-up reply when due."""
        if state not in _FINAL:
            raise ValueError("mark_failed takes the state failed or expired")
        to_ts(now)

        async def work(tx: Tx) -> bool:
            """Settle the row as failed; whether the follow-up reply was queued."""
            row = await tx.one("sending_row", {"id": sms_id})
            if row is None:
                return False
            (_, parts, pk, request_id, account, charged, error, test, _followup, *reply) = row
            if provider is not None:
                await _attempt(tx, sms_id, provider, failure_outcome(state), answer, now)
            await tx.run(
                "set_failed",
                {
                    "id": sms_id,
                    "state": state.value,
                    "attempted": 1 if provider is not None else 0,
                    "provider": provider,
                    "error": shorten(answer),
                },
            )
            if charged and account is not None:
                await tx.run("charge", {"account": account, "parts": -parts})
            reply_to, subject, in_reply_to, references = reply
            if error is not None or test != 1 or reply_to is None:
                return False
            # one follow-up per request, whichever process fails which of its rows first
            followup = await tx.one("lock_request", {"pk": pk})
            if followup is None or followup[0]:
                return False
            if not lim.reply_allowed(await count_replies(tx, reply_to, now), reply_rate_per_hour):
                return False
            await tx.run("set_followup_sent", {"pk": pk})
            draft = ReplyDraft(
                to=reply_to, subject=subject, in_reply_to=in_reply_to, references=references
            )
            await insert_reply(tx, pk, draft, error_line(FOLLOWUP_ERROR, request_id), now)
            return True

        if await self._connector.transaction(work):
            self._connector.notify(Channel.REPLIES, here=True)

    async def claim_owners(self) -> list[str]:
        """The owners (dispatchers) that hold rows in ``sending``."""

        async def work(tx: Tx) -> list[str]:
            return [str(r[0]) for r in await tx.all("claim_owners", {})]

        return await self._connector.transaction(work, write=False)

    async def release_claims(self, owner: str) -> None:
        """Put the rows ``owner`` holds back to ``scheduled``, claimable at once."""

        async def work(tx: Tx) -> None:
            await tx.run("release_owner", {"owner": owner})
            await tx.run("forget_owner", {"owner": owner})

        await self._connector.transaction(work)
        self._connector.notify(Channel.DUE, here=True)

    async def heartbeat(self, owner: str) -> None:
        """``owner`` is alive (a storage shared by several instances keeps the time)."""
        await self._write("heartbeat", {"owner": owner})

    async def stale_owners(self, stale_s: float) -> list[str]:
        """Owners whose last heartbeat is older than ``stale_s`` seconds (database time)."""

        async def work(tx: Tx) -> list[str]:
            rows = await tx.all("stale_owners", {"stale_s": stale_s})
            return [str(r[0]) for r in rows if r[0] is not None]

        return await self._connector.transaction(work, write=False)


# --- the work of each operation, inside its transaction ---------------------------------


def _job(tx: Tx, r: Row) -> SmsJob:
    return SmsJob(
        sms_id=r[0],
        request_id=r[1],
        account=r[2] or "",
        recipient=r[3],
        text=r[4],
        sender=r[5],
        format=Format(r[6]),
        encoding=Encoding(r[7]),
        parts=r[8],
        due=tx.moment(r[9]),
        first_due=tx.moment(r[10]),
        attempts=r[11],
        subject=r[12],
        voice=r[13],
        param=r[14],
        last_provider=r[15],
    )


async def _attempt(
    tx: Tx, sms_id: int, provider: str, outcome: AttemptOutcome, answer: str, now: datetime
) -> None:
    await tx.run(
        "insert_attempt",
        {
            "sms_id": sms_id,
            "at": now,
            "provider": provider,
            "outcome": outcome.value,
            "answer": shorten(answer),
        },
    )
