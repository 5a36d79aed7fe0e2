"""The storage protocol and the records that cross it.

One ``Storage`` serves three clients:

* the SMTP handler: :meth:`Storage.ip_blocked` before parsing, then
  :meth:`Storage.accept`, which commits the raw mail, the request, every SMS
  row, the limit counters and the reply mail in ONE transaction and only then
  returns (a 250 may be sent once it has returned);
* the dispatcher: :meth:`Storage.claim_due` hands out due SMS rows under a
  lease (rows whose lease ran out are handed out again: at-least-once), and
  the ``mark_*`` methods commit each state change;
* the reply mailer: :meth:`Storage.claim_replies` and friends.

Implementations: ``sqlite`` (the embedded default), ``memory`` (unit tests).
A PostgreSQL one claims with ``FOR UPDATE SKIP LOCKED`` under the same
contract. Times are UTC-aware ``datetime``; every method that needs "now"
takes it, so tests drive the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailbridge.models import Encoding, Format, SmsRequest, SmsState
from mailbridge.settings import LimitsSettings

__all__ = [
    "AcceptResult",
    "Attempt",
    "Intake",
    "QueueStats",
    "ReplyDraft",
    "ReplyJob",
    "ReplyView",
    "RequestDetail",
    "RequestSummary",
    "SmsJob",
    "SmsView",
    "Storage",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyDraft:
    """Where a reply mail would go, if one is due. Built from the envelope and headers.

    ``None`` in :class:`Intake` when no reply may ever go (null sender,
    Auto-Submitted, Precedence bulk/junk/list, List-Id, or a mode without replies).
    """

    to: str  # the envelope sender
    subject: str  # "Re: <original subject>", already sanitised (no CR/LF)
    in_reply_to: str  # the original Message-ID ("" if none)
    references: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Intake:
    """What the SMTP handler learnt about one mail, committed by :meth:`Storage.accept`.

    Exactly one of ``request`` and ``error`` is set. ``error`` is an SMSC
    error number found before storage (1, 2, 5, 6, 7, 8); storage itself may
    still refuse an accepted request with 9 (duplicate), 8 (flood) or 3
    (balance).
    """

    received_at: datetime
    client_ip: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes
    mode: str  # "command" | "forward" | "number"
    account: str | None  # None when the login was not recognised
    client_id: str | None  # the id the mail gave, if valid
    request: SmsRequest | None
    error: int | None
    test: int = 0  # the test flag, when it could be read (decides whether OK is replied)
    balance: int | None = None  # the account's configured balance (parts); None: unlimited
    fingerprint: str | None = None  # duplicate key of the parsed request
    reply: ReplyDraft | None = None
    error_detail: str = ""  # for logs and `queue show`; never secrets


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptResult:
    request_id: str
    error: int | None  # final SMSC error number, None when accepted
    sms_count: int  # n of the answer (0 on error)
    line: str  # the result line: "OK - n SMS, ID - id" or "ERROR = N (…)[, ID - id]"
    reply_queued: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsJob:
    """One claimed (message, recipient) row, everything a provider needs."""

    sms_id: int
    request_id: str
    account: str
    recipient: str
    text: str  # already transliterated
    sender: str
    format: Format
    encoding: Encoding
    parts: int
    due: datetime  # when this attempt became due
    first_due: datetime  # the request's due time; validity counts from here
    attempts: int  # attempts made before this one
    subject: str | None = None
    voice: str | None = None
    param: str | None = None
    last_provider: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyJob:
    reply_id: int
    request_id: str
    to: str
    subject: str
    in_reply_to: str
    references: str
    body: str  # the result line(s)
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    at: datetime
    provider: str
    outcome: str  # "sent" | "temporary" | "permanent"
    answer: str  # the provider's answer, shortened; never credentials


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsView:
    sms_id: int
    recipient: str
    state: SmsState
    parts: int
    due: datetime
    provider: str | None
    provider_id: str | None
    attempts: tuple[Attempt, ...]
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSummary:
    request_id: str
    account: str | None
    received_at: datetime
    mode: str
    result: str  # the result line
    sms_total: int
    states: dict[str, int]  # state -> number of SMS rows


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyView:
    """One reply mail of a request, as ``queue show`` prints it."""

    reply_id: int
    to: str
    state: str  # queued | sending | sent
    attempts: int  # smarthost transactions tried
    body: str  # the result line(s)
    due: datetime  # when it is (or was last) due
    sent_at: datetime | None  # when the smarthost took it


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestDetail:
    summary: RequestSummary
    client_ip: str
    mail_from: str
    sender: str | None
    format: int | None
    due: datetime | None
    sms: tuple[SmsView, ...]
    replies: tuple[ReplyView, ...] = ()  # oldest first


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """The queue at a glance (metrics, ``/readyz``, the status page, ``mailbridge status``)."""

    by_state: dict[str, int]  # state -> SMS rows
    oldest_due: datetime | None  # the oldest ``scheduled`` row due at ``now``; None: none due
    replies_waiting: int  # reply mails queued or being sent


class Storage(Protocol):
    """Durable state of the gateway. Every method is one transaction."""

    async def open(self) -> None:
        """Create or migrate the schema; make the storage ready."""

    async def close(self) -> None: ...

    # --- intake (SMTP side) ---------------------------------------------------

    async def ip_blocked(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Whether ``ip`` is inside an error block (SPEC §2, ERROR = 4)."""

    async def record_blocked(self, ip: str, now: datetime) -> None:
        """Count a request refused with ERROR = 4 (does not extend the block)."""

    async def accept(
        self, intake: Intake, *, limits: LimitsSettings, reply_rate_per_hour: int, now: datetime
    ) -> AcceptResult:
        """Commit one mail and everything derived from it, atomically and durably.

        In one transaction: check duplicates (9), flood (8) and balance (3)
        for an accepted request; assign the request ID (the client's id, else
        the next integer); store the raw mail, the request, its SMS rows as
        ``scheduled`` at ``request.due``, the counters (balance charge, flood
        history, duplicate fingerprints, IP errors for 1/2/5/7); queue the reply
        mail when one is due (errors always; OK only with test=1; within
        ``reply_rate_per_hour`` per recipient, counted here). Raises
        ``StorageError`` when it cannot commit; nothing is half-written.
        """
        ...

    # --- delivery (dispatcher side) -------------------------------------------

    async def next_due(self) -> datetime | None:
        """Earliest due time of a claimable row (scheduled, or sending with an expired lease)."""

    async def claim_due(
        self, now: datetime, *, limit: int, lease_s: float, owner: str
    ) -> list[SmsJob]:
        """Move up to ``limit`` due rows to ``sending`` under a lease, oldest due first."""
        ...

    async def mark_sent(
        self, sms_id: int, *, provider: str, provider_id: str, answer: str, now: datetime
    ) -> None: ...

    async def mark_retry(
        self, sms_id: int, *, provider: str, due: datetime, answer: str, now: datetime
    ) -> None:
        """A transient failure: back to ``scheduled`` at ``due``, attempt recorded."""

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
        """Final failure (``failed`` or ``expired``): refund the parts; when the
        request was answered OK with test=1, queue a follow-up reply
        ``ERROR = 8 (…), ID - <id>`` (once per request)."""
        ...

    # --- reply mail (mailer side) ---------------------------------------------

    async def next_reply_due(self) -> datetime | None: ...

    async def claim_replies(
        self, now: datetime, *, limit: int, lease_s: float
    ) -> list[ReplyJob]: ...

    async def mark_reply_sent(self, reply_id: int, now: datetime) -> None: ...

    async def mark_reply_retry(
        self, reply_id: int, *, due: datetime, error: str, now: datetime
    ) -> None: ...

    # --- operators (queue commands) -------------------------------------------

    async def list_requests(
        self, *, state: SmsState | None = None, account: str | None = None, limit: int = 100
    ) -> Sequence[RequestSummary]: ...

    async def show_request(self, request_id: str) -> RequestDetail | None: ...

    async def retry_request(self, request_id: str, now: datetime) -> int:
        """Put failed/expired/cancelled SMS of a request back to ``scheduled`` now.

        Returns how many rows it rescheduled.
        """
        ...

    async def cancel_request(self, request_id: str, now: datetime) -> int:
        """Cancel its scheduled SMS (refunding their parts); returns how many."""
        ...

    # --- monitoring -------------------------------------------------------------

    async def queue_stats(self, now: datetime) -> QueueStats:
        """SMS rows by state, the oldest due one, reply mails waiting; one transaction."""
        ...
