"""The plain values that cross between the intake, storage and delivery.

What the SMTP handler learnt about one mail (:class:`Intake`, with the
:class:`ReplyDraft` of its answer), what storage answers (:class:`AcceptResult`),
what it hands out to the dispatcher and the reply mailer (:class:`SmsJob`,
:class:`ReplyJob`) and what operators see (:class:`RequestSummary`,
:class:`RequestDetail`). Pure data: the core builds them, storage keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbridge.core.receipts import ReceiptAction
from mailbridge.models import (
    AttemptOutcome,
    Encoding,
    Format,
    InboundState,
    ReplyState,
    RouteKind,
    SmsRequest,
    SmsState,
)

__all__ = [
    "AcceptResult",
    "Attempt",
    "InboundIn",
    "InboundMailJob",
    "InboundStored",
    "InboundView",
    "Intake",
    "ReceiptIn",
    "ReceiptStored",
    "ReplyDraft",
    "ReplyJob",
    "ReplyView",
    "RequestDetail",
    "RequestSummary",
    "SentForStatus",
    "SmsJob",
    "SmsView",
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
    """What the SMTP handler learnt about one mail, committed by ``accept`` of the intake storage.

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
    mode: RouteKind
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
    outcome: AttemptOutcome  # SENT, TEMPORARY or PERMANENT
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
    #: The last delivery receipt that reached the row: the provider's word, error code, time.
    receipt_status: str | None = None
    receipt_error: str | None = None
    receipt_at: datetime | None = None
    #: When a provider took it.
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSummary:
    request_id: str
    account: str | None
    received_at: datetime
    mode: RouteKind
    result: str  # the result line
    sms_total: int
    states: dict[SmsState, int]  # state -> number of SMS rows


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyView:
    """One reply mail of a request, as ``queue show`` prints it."""

    reply_id: int
    to: str
    state: ReplyState
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


# --- delivery receipts and SMS from phones ----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptIn:
    """One delivery receipt as storage takes it (``state``: a ``ReceiptState`` value)."""

    provider: str
    message_id: str
    state: str
    status: str
    error_code: str | None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptStored:
    """What one receipt did: ``sms_id`` the row it moved or was recorded with (None: kept
    for later)."""

    action: ReceiptAction
    sms_id: int | None
    #: The not-delivered mail of the request was queued by this receipt.
    mail_queued: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundStored:
    """What one inbound SMS (or part) did."""

    #: The inbound message row, once the message is whole (None: a part waiting for others).
    inbound_id: int | None
    #: A part seen before (same key and sequence): nothing written.
    duplicate: bool = False
    #: Its mail was queued (False: waiting for parts, or kept).
    mail_queued: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMailJob:
    """One inbound SMS's mail, claimed by the mailer."""

    inbound_id: int
    to: str
    from_address: str
    subject: str
    in_reply_to: str
    references: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundView:
    """One inbound SMS as ``mailbridge queue inbound`` lists it."""

    inbound_id: int
    provider: str
    source: str
    destination: str
    text: str
    received_at: datetime
    parts: int
    state: InboundState
    to: str | None
    request_id: str | None
    attempts: int
    sent_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SentForStatus:
    """An SMS in ``sent`` a status query may ask about."""

    sms_id: int
    recipient: str
    provider_id: str
    sent_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundIn:
    """One inbound SMS or part as storage takes it; ``concat`` (reference, total, sequence)."""

    provider: str
    source: str
    destination: str
    text: str
    received_at: datetime
    concat: tuple[int, int, int] | None = None
