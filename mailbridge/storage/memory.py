"""``MemoryStorage``: the storage contract in plain dicts, for tests of the other modules.

Same behaviour as the SQLite backend (the decisions come from
:mod:`mailbridge.storage.common` and :mod:`mailbridge.core.limits`), nothing
durable. Every method runs without awaiting anything, so each one is atomic
on the event loop. Set ``fail_writes`` to make every write raise
:class:`~mailbridge.errors.StorageError`, as a full disk would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailbridge.core import limits as lim
from mailbridge.core.answers import error_line
from mailbridge.errors import StorageError
from mailbridge.models import Encoding, Format, SmsState
from mailbridge.settings import LimitsSettings
from mailbridge.storage.base import (
    AcceptResult,
    Attempt,
    Intake,
    QueueStats,
    ReplyDraft,
    ReplyJob,
    ReplyView,
    RequestDetail,
    RequestSummary,
    SmsJob,
    SmsView,
)
from mailbridge.storage.common import (
    FOLLOWUP_ERROR,
    RETRYABLE_STATES,
    IntakeSnapshot,
    effective_fingerprint,
    failure_outcome,
    plan_intake,
    result_line,
    shorten,
    sms_drafts,
    validate_intake,
)

__all__ = ["MemoryStorage"]


@dataclass(slots=True, kw_only=True)
class _Request:
    pk: int
    request_id: str
    account: str | None
    client_ip: str
    mail_from: str
    mode: str
    received_at: datetime
    result: str
    error: int | None
    error_detail: str
    test: int
    sender: str | None
    format: int | None
    due: datetime | None
    sms_total: int
    charged: bool
    reply: ReplyDraft | None
    raw: bytes
    followup_sent: bool = False


@dataclass(slots=True, kw_only=True)
class _Sms:
    id: int
    request_pk: int
    recipient: str
    text: str
    sender: str
    format: Format
    encoding: Encoding
    parts: int
    state: SmsState
    due: datetime
    first_due: datetime
    subject: str | None
    voice: str | None
    param: str | None
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    provider: str | None = None
    provider_id: str | None = None
    error: str | None = None
    history: list[Attempt] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class _Reply:
    id: int
    request_pk: int
    to: str
    subject: str
    in_reply_to: str
    references: str
    body: str
    created_at: datetime
    due: datetime
    state: str = "queued"  # queued | sending | sent
    attempts: int = 0
    lease_until: datetime | None = None
    error: str | None = None
    sent_at: datetime | None = None


class MemoryStorage:
    """The :class:`~mailbridge.storage.base.Storage` contract held in memory."""

    def __init__(self) -> None:
        self.fail_writes = False
        self._requests: dict[int, _Request] = {}
        self._sms: dict[int, _Sms] = {}
        self._replies: dict[int, _Reply] = {}
        self._duplicates: dict[str, list[datetime]] = {}
        self._flood: dict[str, lim.FloodState] = {}
        self._charged: dict[str, int] = {}
        self._ip_errors: dict[str, list[datetime]] = {}
        self._ip_blocks: dict[str, datetime] = {}
        self._blocked_refused: dict[str, int] = {}
        self._next_request = 1
        self._next_sms = 1
        self._next_reply = 1

    def _write(self) -> None:
        if self.fail_writes:
            raise StorageError("storage cannot commit (fail_writes is set)")

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release; the data stays for inspection."""

    # --- intake -----------------------------------------------------------------

    async def ip_blocked(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Whether ``ip`` is inside an error block."""
        return lim.ip_blocked(self._ip_blocks.get(ip), now)

    async def record_blocked(self, ip: str, now: datetime) -> None:
        """Count a request refused with ERROR = 4."""
        self._write()
        self._blocked_refused[ip] = self._blocked_refused.get(ip, 0) + 1

    async def accept(
        self, intake: Intake, *, limits: LimitsSettings, reply_rate_per_hour: int, now: datetime
    ) -> AcceptResult:
        """Commit one mail and everything derived from it (see the protocol)."""
        validate_intake(intake)
        self._write()
        request = intake.request
        fingerprint = effective_fingerprint(intake)
        dup_since = lim.since(now, limits.duplicate_window_s)
        ip_since = lim.since(now, limits.error_block_window_s)
        snapshot = IntakeSnapshot(
            duplicates=sum(
                1 for at in self._duplicates.get(fingerprint or "", []) if dup_since < at <= now
            ),
            flood={
                n: self._flood[n]
                for n in (request.recipients if request else ())
                if n in self._flood
            },
            charged=self._charged.get(intake.account or "", 0),
            replies_last_hour=(
                self._replies_since(intake.reply.to, now) if intake.reply is not None else 0
            ),
            ip_errors=tuple(
                at for at in self._ip_errors.get(intake.client_ip, []) if ip_since < at <= now
            ),
        )
        plan = plan_intake(
            intake, snapshot, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
        )
        pk = self._next_request
        request_id = intake.client_id or str(pk)
        line = result_line(plan.error, plan.sms_count, request_id)
        self._next_request += 1
        self._requests[pk] = _Request(
            pk=pk,
            request_id=request_id,
            account=intake.account,
            client_ip=intake.client_ip,
            mail_from=intake.mail_from,
            mode=intake.mode,
            received_at=intake.received_at,
            result=line,
            error=plan.error,
            error_detail=intake.error_detail,
            test=intake.test,
            sender=request.sender if request else None,
            format=int(request.format) if request else None,
            due=request.due if request else None,
            sms_total=plan.sms_count,
            charged=plan.charge > 0,
            reply=intake.reply,
            raw=intake.raw,
        )
        if request is not None and plan.error is None:
            for draft in sms_drafts(request):
                sms_id = self._next_sms
                self._next_sms += 1
                self._sms[sms_id] = _Sms(
                    id=sms_id,
                    request_pk=pk,
                    recipient=draft.recipient,
                    text=draft.text,
                    sender=request.sender,
                    format=request.format,
                    encoding=draft.encoding,
                    parts=draft.parts,
                    state=SmsState.SCHEDULED,
                    due=request.due,
                    first_due=request.due,
                    subject=request.subject,
                    voice=request.voice,
                    param=request.param,
                )
        self._flood.update(plan.flood)
        if plan.duplicate is not None:
            kept = [at for at in self._duplicates.get(plan.duplicate, []) if dup_since < at]
            self._duplicates[plan.duplicate] = [*kept, now]
        if plan.charge and intake.account is not None:
            self._charged[intake.account] = self._charged.get(intake.account, 0) + plan.charge
        if plan.ip_error:
            self._ip_errors[intake.client_ip] = [*snapshot.ip_errors, now]
        if plan.block_until is not None:
            self._ip_blocks[intake.client_ip] = plan.block_until
        if plan.queue_reply and intake.reply is not None:
            self._queue_reply(pk, request_id, intake.reply, line, now)
        return AcceptResult(
            request_id=request_id,
            error=plan.error,
            sms_count=plan.sms_count,
            line=line,
            reply_queued=plan.queue_reply,
        )

    def _replies_since(self, to: str, now: datetime) -> int:
        start = now - lim.REPLY_RATE_WINDOW
        return sum(1 for r in self._replies.values() if r.to == to and start < r.created_at <= now)

    def _queue_reply(
        self, pk: int, request_id: str, draft: ReplyDraft, body: str, now: datetime
    ) -> None:
        reply_id = self._next_reply
        self._next_reply += 1
        self._replies[reply_id] = _Reply(
            id=reply_id,
            request_pk=pk,
            to=draft.to,
            subject=draft.subject,
            in_reply_to=draft.in_reply_to,
            references=draft.references,
            body=body,
            created_at=now,
            due=now,
        )

    # --- delivery ---------------------------------------------------------------

    async def next_due(self) -> datetime | None:
        """Earliest time a row becomes claimable."""
        times = [
            s.due if s.state is SmsState.SCHEDULED else s.lease_until
            for s in self._sms.values()
            if s.state is SmsState.SCHEDULED or s.state is SmsState.SENDING
        ]
        return min((t for t in times if t is not None), default=None)

    async def claim_due(
        self, now: datetime, *, limit: int, lease_s: float, owner: str
    ) -> list[SmsJob]:
        """Move up to ``limit`` due rows to ``sending`` under a lease, oldest due first."""
        self._write()
        due = sorted(
            (
                s
                for s in self._sms.values()
                if (s.state is SmsState.SCHEDULED and s.due <= now)
                or (
                    s.state is SmsState.SENDING
                    and s.lease_until is not None
                    and s.lease_until <= now
                )
            ),
            key=lambda s: (s.due, s.id),
        )[: max(limit, 0)]
        jobs = []
        for s in due:
            s.state = SmsState.SENDING
            s.lease_owner = owner
            s.lease_until = now + timedelta(seconds=lease_s)
            req = self._requests[s.request_pk]
            jobs.append(
                SmsJob(
                    sms_id=s.id,
                    request_id=req.request_id,
                    account=req.account or "",
                    recipient=s.recipient,
                    text=s.text,
                    sender=s.sender,
                    format=s.format,
                    encoding=s.encoding,
                    parts=s.parts,
                    due=s.due,
                    first_due=s.first_due,
                    attempts=s.attempts,
                    subject=s.subject,
                    voice=s.voice,
                    param=s.param,
                    last_provider=s.provider,
                )
            )
        return jobs

    def _sending(self, sms_id: int) -> _Sms | None:
        row = self._sms.get(sms_id)
        return row if row is not None and row.state is SmsState.SENDING else None

    def _attempt(self, row: _Sms, provider: str, outcome: str, answer: str, now: datetime) -> None:
        row.history.append(
            Attempt(at=now, provider=provider, outcome=outcome, answer=shorten(answer))
        )

    async def mark_sent(
        self, sms_id: int, *, provider: str, provider_id: str, answer: str, now: datetime
    ) -> None:
        """The provider took the SMS (only a row in ``sending`` moves)."""
        self._write()
        row = self._sending(sms_id)
        if row is None:
            return
        self._attempt(row, provider, "sent", answer, now)
        row.state = SmsState.SENT
        row.attempts += 1
        row.provider, row.provider_id, row.error = provider, provider_id, None
        row.lease_owner = row.lease_until = None

    async def mark_retry(
        self, sms_id: int, *, provider: str, due: datetime, answer: str, now: datetime
    ) -> None:
        """A transient failure: back to ``scheduled`` at ``due``, attempt recorded."""
        self._write()
        row = self._sending(sms_id)
        if row is None:
            return
        self._attempt(row, provider, "temporary", answer, now)
        row.state = SmsState.SCHEDULED
        row.attempts += 1
        row.due = due
        row.provider, row.error = provider, shorten(answer)
        row.lease_owner = row.lease_until = None

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
        if state not in (SmsState.FAILED, SmsState.EXPIRED):
            raise ValueError("mark_failed takes the state failed or expired")
        self._write()
        row = self._sending(sms_id)
        if row is None:
            return
        if provider is not None:
            self._attempt(row, provider, failure_outcome(state), answer, now)
            row.attempts += 1
            row.provider = provider
        row.state = state
        row.error = shorten(answer)
        row.lease_owner = row.lease_until = None
        req = self._requests[row.request_pk]
        self._refund(req, row.parts)
        if (
            req.error is None
            and req.test == 1
            and not req.followup_sent
            and req.reply is not None
            and lim.reply_allowed(self._replies_since(req.reply.to, now), reply_rate_per_hour)
        ):
            req.followup_sent = True
            line = error_line(FOLLOWUP_ERROR, req.request_id)
            self._queue_reply(req.pk, req.request_id, req.reply, line, now)

    def _refund(self, req: _Request, parts: int) -> None:
        if req.charged and req.account is not None:
            self._charged[req.account] = self._charged.get(req.account, 0) - parts

    # --- replies ----------------------------------------------------------------

    async def next_reply_due(self) -> datetime | None:
        """Earliest time a reply becomes claimable."""
        times = [
            r.due if r.state == "queued" else r.lease_until
            for r in self._replies.values()
            if r.state in ("queued", "sending")
        ]
        return min((t for t in times if t is not None), default=None)

    async def claim_replies(self, now: datetime, *, limit: int, lease_s: float) -> list[ReplyJob]:
        """Hand out up to ``limit`` due replies under a lease, oldest first."""
        self._write()
        due = sorted(
            (
                r
                for r in self._replies.values()
                if (r.state == "queued" and r.due <= now)
                or (r.state == "sending" and r.lease_until is not None and r.lease_until <= now)
            ),
            key=lambda r: (r.due, r.id),
        )[: max(limit, 0)]
        jobs = []
        for r in due:
            r.state = "sending"
            r.lease_until = now + timedelta(seconds=lease_s)
            jobs.append(
                ReplyJob(
                    reply_id=r.id,
                    request_id=self._requests[r.request_pk].request_id,
                    to=r.to,
                    subject=r.subject,
                    in_reply_to=r.in_reply_to,
                    references=r.references,
                    body=r.body,
                    attempts=r.attempts,
                )
            )
        return jobs

    async def mark_reply_sent(self, reply_id: int, now: datetime) -> None:
        """The smarthost took the reply."""
        self._write()
        r = self._replies.get(reply_id)
        if r is not None and r.state != "sent":
            r.state, r.lease_until, r.error, r.sent_at = "sent", None, None, now
            r.attempts += 1

    async def mark_reply_retry(
        self, reply_id: int, *, due: datetime, error: str, now: datetime
    ) -> None:
        """The smarthost failed: queued again at ``due``."""
        self._write()
        r = self._replies.get(reply_id)
        if r is not None and r.state != "sent":
            r.state, r.due, r.lease_until, r.error = "queued", due, None, shorten(error)
            r.attempts += 1

    # --- operators --------------------------------------------------------------

    def _summary(self, req: _Request) -> RequestSummary:
        states: dict[str, int] = {}
        for s in self._sms.values():
            if s.request_pk == req.pk:
                states[s.state.value] = states.get(s.state.value, 0) + 1
        return RequestSummary(
            request_id=req.request_id,
            account=req.account,
            received_at=req.received_at,
            mode=req.mode,
            result=req.result,
            sms_total=req.sms_total,
            states=states,
        )

    def _newest(self, request_id: str) -> _Request | None:
        found = [r for r in self._requests.values() if r.request_id == request_id]
        return max(found, key=lambda r: r.pk) if found else None

    async def list_requests(
        self, *, state: SmsState | None = None, account: str | None = None, limit: int = 100
    ) -> Sequence[RequestSummary]:
        """Requests, newest first, optionally those with a row in ``state`` / of ``account``."""
        out: list[RequestSummary] = []
        for req in sorted(self._requests.values(), key=lambda r: r.pk, reverse=True):
            if len(out) >= limit:
                break
            if account is not None and req.account != account:
                continue
            summary = self._summary(req)
            if state is not None and state.value not in summary.states:
                continue
            out.append(summary)
        return out

    async def queue_stats(self, now: datetime) -> QueueStats:
        """SMS rows by state, the oldest due one, replies waiting."""
        by_state: dict[str, int] = {}
        oldest: datetime | None = None
        for row in self._sms.values():
            by_state[row.state.value] = by_state.get(row.state.value, 0) + 1
            if row.state is SmsState.SCHEDULED and row.due <= now:
                oldest = row.due if oldest is None or row.due < oldest else oldest
        waiting = sum(1 for r in self._replies.values() if r.state in ("queued", "sending"))
        return QueueStats(by_state=by_state, oldest_due=oldest, replies_waiting=waiting)

    async def show_request(self, request_id: str) -> RequestDetail | None:
        """The newest request with ``request_id``, with its rows and attempts."""
        req = self._newest(request_id)
        if req is None:
            return None
        rows = sorted((s for s in self._sms.values() if s.request_pk == req.pk), key=lambda s: s.id)
        return RequestDetail(
            summary=self._summary(req),
            client_ip=req.client_ip,
            mail_from=req.mail_from,
            sender=req.sender,
            format=req.format,
            due=req.due,
            sms=tuple(
                SmsView(
                    sms_id=s.id,
                    recipient=s.recipient,
                    state=s.state,
                    parts=s.parts,
                    due=s.due,
                    provider=s.provider,
                    provider_id=s.provider_id,
                    attempts=tuple(s.history),
                    error=s.error,
                )
                for s in rows
            ),
            replies=tuple(
                ReplyView(
                    reply_id=r.id,
                    to=r.to,
                    state=r.state,
                    attempts=r.attempts,
                    body=r.body,
                    due=r.due,
                    sent_at=r.sent_at,
                )
                for r in sorted(self._replies.values(), key=lambda r: r.id)
                if r.request_pk == req.pk
            ),
        )

    async def retry_request(self, request_id: str, now: datetime) -> int:
        """Failed/expired/cancelled rows back to ``scheduled`` now (charged again)."""
        self._write()
        req = self._newest(request_id)
        if req is None:
            return 0
        count = 0
        for s in self._sms.values():
            if s.request_pk == req.pk and s.state in RETRYABLE_STATES:
                s.state, s.due, s.first_due, s.error = SmsState.SCHEDULED, now, now, None
                s.lease_owner = s.lease_until = None
                self._refund(req, -s.parts)
                count += 1
        return count

    async def cancel_request(self, request_id: str, now: datetime) -> int:
        """Cancel the scheduled rows of the request, refunding their parts."""
        self._write()
        req = self._newest(request_id)
        if req is None:
            return 0
        count = 0
        for s in self._sms.values():
            if s.request_pk == req.pk and s.state is SmsState.SCHEDULED:
                s.state = SmsState.CANCELLED
                self._refund(req, s.parts)
                count += 1
        return count
