"""The records of delivery receipts and inbound SMS that cross the storage boundary.

The storage methods that take and give them are part of
:class:`mailbridge.storage.base.Storage`; every backend runs the same rules
(:mod:`mailbridge.core.receipts`, :mod:`mailbridge.core.inbound`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailbridge.settings import InboundSettings

__all__ = [
    "EventStorage",
    "InboundIn",
    "InboundMailJob",
    "InboundStored",
    "InboundView",
    "ReceiptIn",
    "ReceiptStored",
    "SentForStatus",
]


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
    """What one receipt did: ``action`` a :class:`~mailbridge.core.receipts.ReceiptAction`
    value; ``sms_id`` the row it moved or was recorded with (None: kept for later)."""

    action: str
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
    #: ``queued`` | ``sending`` | ``sent`` | ``kept`` (no one to mail it to).
    state: str
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


class EventStorage(Protocol):
    """The storage methods of receipts and inbound SMS; each is one transaction."""

    async def record_receipt(
        self, receipt: ReceiptIn, *, now: datetime, reply_rate_per_hour: int
    ) -> ReceiptStored:
        """Apply, record or keep one receipt (:func:`mailbridge.core.receipts.decide_receipt`).

        Matched by ``(provider, message_id)`` against the rows' provider and
        provider id. A receipt that moves a row to ``failed``/``expired`` and so
        leaves every row of its request failed or expired queues the request's
        not-delivered mail, once, when the request may get replies.
        """
        ...

    async def claim_status_checks(
        self, provider: str, *, now: datetime, every_s: float, max_age_s: float, limit: int
    ) -> list[SentForStatus]:
        """Rows of ``provider`` in ``sent``, sent within ``max_age_s`` and not asked about
        within ``every_s``, oldest asked first; marked asked now."""
        ...

    async def store_inbound(
        self, sms: InboundIn, *, now: datetime, settings: InboundSettings, domain: str
    ) -> InboundStored:
        """Store one inbound SMS or part durably; a whole message is routed
        (:func:`mailbridge.core.inbound.inbound_route`) and its mail queued, or kept."""
        ...

    async def flush_inbound_parts(
        self, *, now: datetime, settings: InboundSettings, domain: str
    ) -> int:
        """Messages whose parts stopped coming (:data:`~mailbridge.core.inbound.PART_WAIT_S`)
        stored with gaps and routed; returns how many."""
        ...

    async def next_inbound_due(self) -> datetime | None: ...

    async def claim_inbound_mails(
        self, now: datetime, *, limit: int, lease_s: float
    ) -> list[InboundMailJob]: ...

    async def mark_inbound_sent(self, inbound_id: int, now: datetime) -> None: ...

    async def mark_inbound_retry(
        self, inbound_id: int, *, due: datetime, error: str, now: datetime
    ) -> None: ...

    async def list_inbound(self, *, limit: int = 100) -> Sequence[InboundView]: ...
