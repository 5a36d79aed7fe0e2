"""What a provider reports after it took an SMS: delivery receipts and SMS from phones.

A provider that can hear back from the network (an SMPP session's
``deliver_sm``, an HTTP status query, a callback) turns what it hears into
these plain values and hands them to a :class:`ProviderEvents` sink. The sink
stores them durably before it returns, so a provider acknowledges a
``deliver_sm`` only after the call came back: a receipt or an inbound SMS
that was acknowledged is on disk.

The values carry no I/O and no provider library types.

How a provider gets its sink: a provider that reports takes it in its
constructor, ``events: ProviderEvents | None`` after its settings (as
``SmppProvider(settings, events)``); the factory passes it on
(``build_providers(settings.providers, events)``), and the daemon's
composition root (:class:`mailbridge.runtime.app.Gateway`) builds one sink,
:class:`mailbridge.delivery.events.StorageEvents`, before the providers, and
hands the same sink to the providers a SIGHUP reload builds. ``None`` (unit
tests, benchmarks, ``mailbridge parse``): the provider has nowhere to store a
receipt and must not acknowledge one.

A provider whose wire format can only be *asked* for status (SMSC's HTTP
status query) implements :class:`StatusQuery` instead: the daemon's status
poller hands it the SMS it took that have no final state yet, and feeds the
receipts it answers into the same sink.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = [
    "Concat",
    "InboundSms",
    "ProviderEvents",
    "Receipt",
    "ReceiptState",
    "SentSms",
    "StatusQuery",
]


class ReceiptState(enum.StrEnum):
    """What a delivery receipt says about one SMS (SPEC §4 states, and the interim ones)."""

    #: Still on its way (``ENROUTE``, ``ACCEPTD``, ``UNKNOWN``): no state change.
    PENDING = "pending"
    DELIVERED = "delivered"
    #: ``UNDELIV``, ``REJECTD``, ``DELETED``.
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """One delivery receipt: ``message_id`` is the id the provider gave when it took the SMS."""

    provider: str
    message_id: str
    state: ReceiptState
    #: The provider's own word for the state (``DELIVRD``, ``UNDELIV``, …).
    status: str
    #: The network error code, when the receipt carries one (``err:`` field).
    error_code: str | None
    #: When the network reached that state (``done date``), else when the receipt arrived.
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Concat:
    """Where one part of a concatenated SMS belongs (from its UDH or SAR TLVs)."""

    reference: int
    total: int
    #: 1-based.
    sequence: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundSms:
    """An SMS a phone sent (mobile-originated), decoded to text; one part when ``concat`` is set."""

    provider: str
    #: The phone, E.164 where the network gave an international number.
    source: str
    #: The number or short code it was sent to.
    destination: str
    text: str
    received_at: datetime
    concat: Concat | None = None


class ProviderEvents(Protocol):
    """Where providers report; each method returns once the event is stored durably."""

    async def receipt(self, receipt: Receipt) -> None:
        """Store one delivery receipt (unknown ids and repeats included)."""
        ...

    async def inbound(self, sms: InboundSms) -> None:
        """Store one inbound SMS (or one part of it)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SentSms:
    """An SMS a provider took and that has no final state yet: what a status query needs."""

    sms_id: int
    recipient: str
    #: The id the provider gave when it took the SMS.
    message_id: str
    sent_at: datetime


@runtime_checkable
class StatusQuery(Protocol):
    """A provider whose wire format answers status queries (SMSC's HTTP ``status.php``)."""

    name: str
    #: Seconds between two rounds of queries; 0: never asked.
    status_poll_s: float

    async def query_status(self, sent: Sequence[SentSms], *, now: datetime) -> list[Receipt]:
        """The receipts the provider gives for ``sent`` (none for an SMS it knows nothing new of).

        Raises :class:`~mailbridge.errors.ProviderError` when the provider
        cannot be asked at all (down, credentials refused).
        """
        ...
