"""What storage offers, one small protocol per client.

* :class:`IntakeStore`, the SMTP handler: :meth:`IntakeStore.ip_blocked` before
  parsing, then :meth:`IntakeStore.accept`, which commits the raw mail, the
  request, every SMS row, the limit counters and the reply mail in ONE
  transaction and only then returns (a 250 may be sent once it has returned);
* :class:`DeliveryStore`, the dispatcher: :meth:`DeliveryStore.claim_due` hands
  out due SMS rows under a lease (rows whose lease ran out are handed out
  again: at-least-once), and the ``mark_*`` methods commit each state change;
* :class:`ReplyStore`, the reply mailer: :meth:`ReplyStore.claim_replies` and friends;
* :class:`QueueStore`, operators (``mailbridge queue``);
* :class:`EventStore`, the provider events sink and the status poller;
* :class:`MonitorStore`, monitoring (``/metrics``, ``/readyz``, ``mailbridge status``);
* :class:`RetentionStore`, the retention pass.

:class:`Storage` is all seven with ``open``/``close``: what a backend is. The
backends (``sqlite``, ``postgres``, ``memory``) are one domain layer
(:mod:`mailbridge.storage.domain` and the parts it is mixed from) over a small
connector each. Times are
UTC-aware ``datetime``; every method that needs "now" takes it, so tests
drive the clock.

The records that cross these protocols live in :mod:`mailbridge.core.records`
(re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailbridge.core.records import (
    AcceptResult,
    Attempt,
    InboundIn,
    InboundMailJob,
    InboundStored,
    InboundView,
    Intake,
    ReceiptIn,
    ReceiptStored,
    ReplyDraft,
    ReplyJob,
    ReplyView,
    RequestDetail,
    RequestSummary,
    SentForStatus,
    SmsJob,
    SmsView,
)
from mailbridge.models import SmsState
from mailbridge.observe import Observer
from mailbridge.settings import InboundSettings, LimitsSettings

__all__ = [
    "AcceptResult",
    "Attempt",
    "Callback",
    "DeliveryStore",
    "EventStore",
    "Intake",
    "IntakeStore",
    "MonitorStore",
    "QueueStats",
    "QueueStore",
    "ReplyDraft",
    "ReplyJob",
    "ReplyStore",
    "ReplyView",
    "RequestDetail",
    "RequestSummary",
    "RetentionStore",
    "SmsJob",
    "SmsView",
    "Storage",
    "Unsubscribe",
]

#: A wake-up: called on the event loop, with no argument.
Callback = Callable[[], None]
#: What a ``subscribe_*`` returns: call it to stop (twice is harmless).
Unsubscribe = Callable[[], None]


class IntakeStore(Protocol):
    """What the SMTP handler needs."""

    async def ip_blocked(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Whether ``ip`` is inside an error block (SPEC §2, ERROR = 4)."""
        ...

    async def record_blocked(self, ip: str, now: datetime) -> None:
        """Count a request refused with ERROR = 4 (does not extend the block)."""
        ...

    async def record_ip_error(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Count one error for ``ip`` outside a mail (a failed SMTP AUTH), as a request
        answered with ERROR = 2 counts; True when it starts a block."""
        ...

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

    async def accept_all(
        self,
        intakes: Sequence[Intake],
        *,
        limits: LimitsSettings,
        reply_rate_per_hour: int,
        now: datetime,
    ) -> list[AcceptResult]:
        """Commit the requests of one mail to several kinds of recipient (SPEC §3): each
        intake as :meth:`accept` would, all in ONE transaction, all or none. When storage
        refuses one (9, 8, 3) nothing of the mail is written and the result is that refusal
        alone; otherwise one result per intake, in order."""
        ...


class DeliveryStore(Protocol):
    """What the dispatcher needs."""

    async def claim_owners(self) -> list[str]:
        """The owners (dispatchers) that hold rows in ``sending``."""
        ...

    async def release_claims(self, owner: str) -> None:
        """Put the rows ``owner`` holds in ``sending`` back to ``scheduled`` at once."""
        ...

    async def heartbeat(self, owner: str) -> None:
        """``owner`` (a dispatcher) is alive; kept by storages shared between instances."""
        ...

    async def stale_owners(self, stale_s: float) -> list[str]:
        """Owners not heard of for ``stale_s`` seconds (PostgreSQL; SQLite: none)."""
        ...

    async def next_due(self) -> datetime | None:
        """Earliest due time of a claimable row (scheduled, or sending with an expired lease)."""
        ...

    async def claim_due(
        self, now: datetime, *, limit: int, lease_s: float, owner: str
    ) -> list[SmsJob]:
        """Move up to ``limit`` due rows to ``sending`` under a lease, oldest due first."""
        ...

    async def mark_sent(
        self,
        sms_id: int,
        *,
        provider: str,
        provider_id: str,
        answer: str,
        now: datetime,
        reply_rate_per_hour: int = 30,
    ) -> None:
        """The provider took the SMS; receipts kept for its id are applied now (a
        not-delivered mail they queue counts against ``reply_rate_per_hour``)."""
        ...

    async def mark_retry(
        self, sms_id: int, *, provider: str, due: datetime, answer: str, now: datetime
    ) -> None:
        """A transient failure: back to ``scheduled`` at ``due``, attempt recorded."""
        ...

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

    def subscribe_due(self, callback: Callback) -> Unsubscribe:
        """Call ``callback`` when rows were committed that this process did not announce
        itself (another instance on a shared database; ``queue retry``)."""
        ...


class ReplyStore(Protocol):
    """What the reply mailer needs: reply mails, and the mails of SMS from phones."""

    async def next_reply_due(self) -> datetime | None: ...

    async def claim_replies(
        self, now: datetime, *, limit: int, lease_s: float
    ) -> list[ReplyJob]: ...

    async def mark_reply_sent(self, reply_id: int, now: datetime) -> None: ...

    async def mark_reply_retry(
        self, reply_id: int, *, due: datetime, error: str, now: datetime
    ) -> None: ...

    async def mark_reply_dropped(self, reply_id: int, *, error: str, now: datetime) -> None:
        """The smarthost refused the reply for good (5xx): state ``dropped``, never claimed
        again (``queue show`` lists it with the smarthost's answer)."""
        ...

    def subscribe_replies(self, callback: Callback) -> Unsubscribe:
        """Call ``callback`` when a reply was queued that the SMTP handler did not announce
        (a follow-up from ``mark_failed``; another instance's replies)."""
        ...

    async def next_inbound_due(self) -> datetime | None: ...

    async def claim_inbound_mails(
        self, now: datetime, *, limit: int, lease_s: float
    ) -> list[InboundMailJob]: ...

    async def mark_inbound_sent(self, inbound_id: int, now: datetime) -> None: ...

    async def mark_inbound_retry(
        self, inbound_id: int, *, due: datetime, error: str, now: datetime
    ) -> None: ...


class EventStore(Protocol):
    """What the provider events sink and the status poller need (receipts, SMS from phones)."""

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


class QueueStore(Protocol):
    """What operators' ``mailbridge queue`` commands need."""

    async def list_requests(
        self, *, state: SmsState | None = None, account: str | None = None, limit: int = 100
    ) -> Sequence[RequestSummary]: ...

    async def show_request(self, request_id: str) -> RequestDetail | None: ...

    async def retry_request(self, request_id: str, now: datetime) -> int:
        """Put failed/expired/cancelled SMS of a request back to ``scheduled`` now.

        Returns how many rows it rescheduled.
        """
        ...

    async def balance_charges(self) -> dict[str, int]:
        """Parts charged so far per account: accepted requests, less refunds (SMS that
        failed or were cancelled) and top-ups. What an account has left is its configured
        ``balance`` minus this."""
        ...

    async def top_up(self, account: str, parts: int) -> int:
        """Give ``account`` ``parts`` more (negative: take them back); its charge after."""
        ...

    async def cancel_request(self, request_id: str, now: datetime) -> int:
        """Cancel its scheduled SMS (refunding their parts); returns how many."""
        ...

    async def list_inbound(self, *, limit: int = 100) -> Sequence[InboundView]:
        """SMS from phones, newest first."""
        ...


class RetentionStore(Protocol):
    """What the retention pass needs."""

    async def prune_raw_mails(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` raw mails of requests received before ``before``."""
        ...

    async def prune_requests(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` finished requests received before ``before``, with their
        SMS, attempts, replies and raw mail; the number deleted."""
        ...

    async def prune_inbound(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` SMS from phones stored before ``before`` whose mail was
        sent or that had no one to mail to (``kept``), with their parts; the number
        deleted. One whose mail is still queued stays."""
        ...

    async def compact(self) -> None:
        """Give the space of deleted rows back (SQLite: incremental vacuum and a
        truncating WAL checkpoint; PostgreSQL: its autovacuum does)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """The queue at a glance (metrics, ``/readyz``, the status page, ``mailbridge status``)."""

    by_state: dict[str, int]  # state -> SMS rows
    oldest_due: datetime | None  # the oldest ``scheduled`` row due at ``now``; None: none due
    replies_waiting: int  # reply mails queued or being sent


class MonitorStore(Protocol):
    """What monitoring reads (``mailbridge.http``, ``mailbridge status``)."""

    async def queue_stats(self, now: datetime) -> QueueStats:
        """SMS rows by state, the oldest due one, reply mails waiting; off the write path
        where the backend can (SQLite: a read-only connection of its own)."""
        ...


class Storage(
    IntakeStore,
    DeliveryStore,
    ReplyStore,
    QueueStore,
    EventStore,
    MonitorStore,
    RetentionStore,
    Protocol,
):
    """A whole backend: every client's protocol, opened and closed. Each method is
    one transaction."""

    #: Told each transaction's duration (storage commit latency); set before ``open``.
    observer: Observer

    async def open(self) -> None:
        """Create or migrate the schema; make the storage ready."""
        ...

    async def close(self) -> None: ...
