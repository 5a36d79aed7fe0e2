"""The storage rules, written once for every backend.

:class:`Store` is the whole :class:`~mailbridge.storage.base.Storage`
contract: what an intake reads and writes (the plan of
:mod:`mailbridge.storage.common`), the state changes of SMS rows and reply
mails, the follow-up reply of ``mark_failed``, operators' retry and cancel,
and the mapping of rows to records. It runs on a
:class:`~mailbridge.storage.connector.Connector` (SQLite, PostgreSQL, memory),
which gives it a transaction and runs its named queries. What one intake reads
and writes is in :mod:`mailbridge.storage.intake`.

To add an operation: a method here that runs named queries inside
``self._connector.transaction``, and the queries in each
``<dialect>_queries.sql`` (and :mod:`mailbridge.storage.memory`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from mailbridge.core import limits as lim
from mailbridge.core.answers import error_line
from mailbridge.core.records import (
    AcceptResult,
    Attempt,
    Intake,
    ReplyDraft,
    ReplyJob,
    ReplyView,
    RequestDetail,
    RequestSummary,
    SmsJob,
    SmsView,
)
from mailbridge.models import AttemptOutcome, Encoding, Format, ReplyState, RouteKind, SmsState
from mailbridge.observe import Observer
from mailbridge.settings import LimitsSettings
from mailbridge.storage.base import Callback, QueueStats, Unsubscribe
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


class Store(EventsStore):
    """The :class:`~mailbridge.storage.base.Storage` contract over one connector
    (receipts and SMS from phones: :class:`~mailbridge.storage.events_domain.EventsStore`)."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        # mark_sent calls under way together share one transaction (group commit)
        self._sent: Coalescer[_Sent] = Coalescer(self._write_sent)

    @property
    def observer(self) -> Observer:
        """Told each transaction's duration (storage commit latency); set before ``open``."""
        return self._connector.observer

    @observer.setter
    def observer(self, value: Observer) -> None:
        self._connector.observer = value

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

        async def work(tx: Tx) -> None:
            await tx.run("record_blocked", {"ip": ip})

        await self._connector.transaction(work)

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

        async def work(tx: Tx) -> AcceptResult:
            return await accept_intake(
                tx, intake, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
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
        return await self._connector.transaction(_read_time("next_due"), write=False)

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
            return await _mark_failed(
                tx,
                sms_id=sms_id,
                provider=provider,
                state=state,
                answer=answer,
                now=now,
                reply_rate_per_hour=reply_rate_per_hour,
            )

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

        async def work(tx: Tx) -> None:
            await tx.run("heartbeat", {"owner": owner})

        await self._connector.transaction(work)

    async def stale_owners(self, stale_s: float) -> list[str]:
        """Owners whose last heartbeat is older than ``stale_s`` seconds (database time)."""

        async def work(tx: Tx) -> list[str]:
            rows = await tx.all("stale_owners", {"stale_s": stale_s})
            return [str(r[0]) for r in rows if r[0] is not None]

        return await self._connector.transaction(work, write=False)

    # --- retention --------------------------------------------------------------

    async def prune_raw_mails(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` raw mails of requests received before ``before``."""
        to_ts(before)

        async def work(tx: Tx) -> int:
            cutoff = await tx.one("retention_cutoff", {"before": before})
            if cutoff is None or cutoff[0] is None:
                return 0
            rows = await tx.all("old_raw_mails", {"cutoff": cutoff[0], "limit": limit})
            pks = [int(r[0]) for r in rows]
            if pks:
                await tx.run("delete_mails_of", {"pks": pks})
            return len(pks)

        return await self._connector.transaction(work)

    async def prune_requests(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` finished requests received before ``before`` and all
        that hangs off them (SMS, attempts, replies, raw mail)."""
        to_ts(before)

        async def work(tx: Tx) -> int:
            cutoff = await tx.one("retention_cutoff", {"before": before})
            if cutoff is None or cutoff[0] is None:
                return 0
            rows = await tx.all("finished_requests", {"cutoff": cutoff[0], "limit": limit})
            pks = [int(r[0]) for r in rows]
            if pks:
                for query in (
                    "delete_attempts_of",
                    "delete_parts_of",
                    "detach_inbound_of",
                    "delete_sms_of",
                    "delete_replies_of",
                    "delete_mails_of",
                    "delete_requests",
                ):
                    await tx.run(query, {"pks": pks})
            return len(pks)

        return await self._connector.transaction(work)

    async def compact(self) -> None:
        """Give the space of deleted rows back, as the backend does it."""
        await self._connector.compact()

    # --- replies ----------------------------------------------------------------

    async def next_reply_due(self) -> datetime | None:
        """Earliest time a reply becomes claimable."""
        return await self._connector.transaction(_read_time("next_reply_due"), write=False)

    async def claim_replies(self, now: datetime, *, limit: int, lease_s: float) -> list[ReplyJob]:
        """Lease up to ``limit`` due replies, oldest first, each to one claimer."""
        if limit <= 0:
            return []
        to_ts(now)
        params = {"now": now, "limit": limit, "until": now + timedelta(seconds=lease_s)}

        async def work(tx: Tx) -> list[ReplyJob]:
            rows = await tx.claim("claim_replies", params)
            return [
                ReplyJob(
                    reply_id=r[0],
                    request_id=r[1],
                    to=r[2],
                    subject=r[3],
                    in_reply_to=r[4],
                    references=r[5],
                    body=r[6],
                    attempts=r[7],
                )
                for r in sorted(rows, key=lambda r: (r[8], r[0]))
            ]

        return await self._connector.transaction(work)

    async def mark_reply_sent(self, reply_id: int, now: datetime) -> None:
        """The smarthost took the reply."""
        to_ts(now)

        async def work(tx: Tx) -> None:
            await tx.run("set_reply_sent", {"id": reply_id, "now": now})

        await self._connector.transaction(work)

    async def mark_reply_retry(
        self, reply_id: int, *, due: datetime, error: str, now: datetime
    ) -> None:
        """The smarthost failed: queued again at ``due``."""
        to_ts(due)
        params = {"id": reply_id, "due": due, "error": shorten(error)}

        async def work(tx: Tx) -> None:
            await tx.run("set_reply_retry", params)

        await self._connector.transaction(work)

    async def balance_charges(self) -> dict[str, int]:
        """Parts charged so far per account (net of refunds and top-ups)."""

        async def work(tx: Tx) -> dict[str, int]:
            return {str(r[0]): int(r[1]) for r in await tx.all("balance_charges", {})}

        return await self._connector.transaction(work, write=False)

    async def top_up(self, account: str, parts: int) -> int:
        """Give ``account`` ``parts`` more (a negative charge); its charge after."""

        async def work(tx: Tx) -> int:
            await tx.run("charge", {"account": account, "parts": -parts})
            row = await tx.one("charged_of", {"account": account})
            return int(row[0]) if row is not None else 0

        return await self._connector.transaction(work)

    async def mark_reply_dropped(self, reply_id: int, *, error: str, now: datetime) -> None:
        """The smarthost refused the reply for good (5xx): kept as ``dropped``, not retried."""
        to_ts(now)
        params = {"id": reply_id, "error": shorten(error)}

        async def work(tx: Tx) -> None:
            await tx.run("set_reply_dropped", params)

        await self._connector.transaction(work)

    # --- operators --------------------------------------------------------------

    async def list_requests(
        self, *, state: SmsState | None = None, account: str | None = None, limit: int = 100
    ) -> Sequence[RequestSummary]:
        """Requests, newest first, optionally those with a row in ``state`` / of ``account``."""
        if limit <= 0:
            return []
        params = {
            "state": state.value if state is not None else None,
            "account": account,
            "limit": limit,
        }

        async def work(tx: Tx) -> list[RequestSummary]:
            return await _summaries(tx, await tx.all("list_requests", params))

        return await self._connector.transaction(work, write=False)

    async def show_request(self, request_id: str) -> RequestDetail | None:
        """The newest request with ``request_id``, with its rows, attempts and replies."""

        async def work(tx: Tx) -> RequestDetail | None:
            return await _show_request(tx, request_id)

        return await self._connector.transaction(work, write=False)

    async def retry_request(self, request_id: str, now: datetime) -> int:
        """Failed/expired/cancelled rows back to ``scheduled`` now (charged again)."""
        to_ts(now)
        count = await self._connector.transaction(_requeue(request_id, now, retry=True))
        if count:
            self._connector.notify(Channel.DUE, here=False)
        return count

    async def cancel_request(self, request_id: str, now: datetime) -> int:
        """Cancel the scheduled rows of the request, refunding their parts."""
        return await self._connector.transaction(_requeue(request_id, now, retry=False))

    # --- monitoring -------------------------------------------------------------

    async def queue_stats(self, now: datetime) -> QueueStats:
        """SMS rows by state, the oldest due one, reply mails waiting (off the write path)."""

        async def work(tx: Tx) -> QueueStats:
            states = await tx.all("queue_states", {})
            oldest = await tx.one("oldest_due", {"now": now})
            waiting = await tx.one("replies_waiting", {})
            return QueueStats(
                by_state={str(state): int(n) for state, n in states},
                oldest_due=None if oldest is None or oldest[0] is None else tx.moment(oldest[0]),
                replies_waiting=int(waiting[0]) if waiting is not None else 0,
            )

        to_ts(now)
        return await self._connector.snapshot(work)


# --- the work of each operation, inside its transaction ---------------------------------


def _read_time(query: str) -> Callable[[Tx], Awaitable[datetime | None]]:
    """A transaction reading one nullable time."""

    async def work(tx: Tx) -> datetime | None:
        row = await tx.one(query, {})
        return None if row is None or row[0] is None else tx.moment(row[0])

    return work


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


async def _mark_failed(
    tx: Tx,
    *,
    sms_id: int,
    provider: str | None,
    state: SmsState,
    answer: str,
    now: datetime,
    reply_rate_per_hour: int,
) -> bool:
    """Settle a row as failed; whether the follow-up reply was queued."""
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
    draft = ReplyDraft(to=reply_to, subject=subject, in_reply_to=in_reply_to, references=references)
    await insert_reply(tx, pk, draft, error_line(FOLLOWUP_ERROR, request_id), now)
    return True


async def _summaries(tx: Tx, rows: Sequence[Row]) -> list[RequestSummary]:
    states: dict[int, dict[SmsState, int]] = {}
    if rows:
        for pk, state, count in await tx.all("request_states", {"pks": [r[0] for r in rows]}):
            states.setdefault(pk, {})[SmsState(state)] = count
    return [
        RequestSummary(
            request_id=r[1],
            account=r[2],
            received_at=tx.moment(r[3]),
            mode=RouteKind(r[4]),
            result=r[5],
            sms_total=r[6],
            states=states.get(r[0], {}),
        )
        for r in rows
    ]


async def _show_request(tx: Tx, request_id: str) -> RequestDetail | None:
    req = await tx.one("newest_request", {"request_id": request_id})
    if req is None:
        return None
    pk = req[0]
    attempts: dict[int, list[Attempt]] = {}
    for sms_id, at, provider, outcome, answer in await tx.all("request_attempts", {"pk": pk}):
        attempts.setdefault(sms_id, []).append(
            Attempt(
                at=tx.moment(at),
                provider=provider,
                outcome=AttemptOutcome(outcome),
                answer=answer,
            )
        )
    sms = tuple(
        SmsView(
            sms_id=r[0],
            recipient=r[1],
            state=SmsState(r[2]),
            parts=r[3],
            due=tx.moment(r[4]),
            provider=r[5],
            provider_id=r[6],
            attempts=tuple(attempts.get(r[0], ())),
            error=r[7],
            receipt_status=r[8],
            receipt_error=r[9],
            receipt_at=None if r[10] is None else tx.moment(r[10]),
            sent_at=None if r[11] is None else tx.moment(r[11]),
        )
        for r in await tx.all("request_sms", {"pk": pk})
    )
    replies = tuple(
        ReplyView(
            reply_id=r[0],
            to=r[1],
            state=ReplyState(r[2]),
            attempts=r[3],
            body=r[4],
            due=tx.moment(r[5]),
            sent_at=None if r[6] is None else tx.moment(r[6]),
        )
        for r in await tx.all("request_replies", {"pk": pk})
    )
    (summary,) = await _summaries(tx, [req])
    return RequestDetail(
        summary=summary,
        client_ip=req[7],
        mail_from=req[8],
        sender=req[9],
        format=req[10],
        due=None if req[11] is None else tx.moment(req[11]),
        sms=sms,
        replies=replies,
    )


def _requeue(request_id: str, now: datetime, *, retry: bool) -> Callable[[Tx], Awaitable[int]]:
    """``queue retry`` (failed/expired/cancelled rows back to scheduled now, charged again)
    or ``queue cancel`` (scheduled rows cancelled, refunded): the rows it changed."""

    async def work(tx: Tx) -> int:
        req = await tx.one("newest_request", {"request_id": request_id})
        if req is None:
            return 0
        rows = await tx.all("retryable_rows" if retry else "scheduled_rows", {"pk": req[0]})
        if not rows:
            return 0
        if retry:
            await tx.run_many("reschedule", [{"id": r[0], "now": now} for r in rows])
        else:
            await tx.run_many("cancel_row", [{"id": r[0]} for r in rows])
        if req[12] and req[2] is not None:
            parts = sum(r[1] for r in rows)
            await tx.run("charge", {"account": req[2], "parts": parts if retry else -parts})
        return len(rows)

    return work
