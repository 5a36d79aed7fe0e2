"""The daemon's :class:`~mailbridge.providers.events.ProviderEvents` sink, and its wiring.

:class:`StorageEvents` stores what providers report, each in one committed
transaction before the call returns (so a provider acknowledges a
``deliver_sm`` only once it is on disk): receipts go through
``Storage.record_receipt`` (SPEC §4 states, with time and error code),
SMS from phones through ``Storage.store_inbound`` (parts reassembled, the
mail queued for the reply mailer, or kept). It wakes the mailer when a mail
was queued. Providers get it in their constructor, through the factory
(see :mod:`mailbridge.providers.events`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mailbridge.core.receipts import ReceiptAction
from mailbridge.core.records import InboundIn, ReceiptIn
from mailbridge.delivery.clock import utcnow
from mailbridge.log import get_logger
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.providers.events import InboundSms, Receipt
from mailbridge.settings import Settings
from mailbridge.storage.base import EventStore

__all__ = ["StorageEvents"]

log = get_logger("mailbridge.events")


def _nothing() -> None:
    return None


def _domain(settings: Settings) -> str:
    domains = settings.smtp.domains
    return domains[0] if domains else settings.smtp.hostname


class StorageEvents:
    """Stores receipts and inbound SMS; see the module docstring."""

    def __init__(
        self,
        storage: EventStore,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_mail: Callable[[], None] = _nothing,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._storage = storage
        self._observer = observer  # told each row a receipt moved (sent → delivered, …)
        self._settings = settings
        self._clock = clock
        self._on_mail = on_mail
        self.receipts = 0
        self.inbound_sms = 0

    def reload(self, settings: Settings) -> None:
        self._settings = settings

    def wake_on_mail(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each commit that queued a mail (the mailer's ``wake``)."""
        self._on_mail = callback

    async def receipt(self, receipt: Receipt) -> None:
        """Store one delivery receipt (unknown ids kept, repeats recognised)."""
        stored = await self._storage.record_receipt(
            ReceiptIn(
                provider=receipt.provider,
                message_id=receipt.message_id,
                state=receipt.state.value,
                status=receipt.status,
                error_code=receipt.error_code,
                at=receipt.at,
            ),
            now=self._clock(),
            reply_rate_per_hour=self._settings.reply.reply_rate_per_hour,
        )
        self.receipts += 1
        if stored.action == ReceiptAction.APPLY:
            self._observer.transition(receipt.provider, "sent", receipt.state.value)
        log.info(
            "receipt",
            provider=receipt.provider,
            message_id=receipt.message_id,
            state=receipt.state.value,
            status=receipt.status,
            error_code=receipt.error_code,
            action=stored.action.value,
            sms_id=stored.sms_id,
        )
        if stored.mail_queued:
            self._on_mail()

    async def inbound(self, sms: InboundSms) -> None:
        """Store one inbound SMS or part; queue its mail when the message is whole."""
        concat = sms.concat
        settings = self._settings
        stored = await self._storage.store_inbound(
            InboundIn(
                provider=sms.provider,
                source=sms.source,
                destination=sms.destination,
                text=sms.text,
                received_at=sms.received_at,
                concat=None
                if concat is None
                else (concat.reference, concat.total, concat.sequence),
            ),
            now=self._clock(),
            settings=settings.inbound,
            domain=_domain(settings),
        )
        self.inbound_sms += 1
        log.info(
            "inbound_sms",
            provider=sms.provider,
            source=sms.source,
            part=None if concat is None else f"{concat.sequence}/{concat.total}",
            inbound_id=stored.inbound_id,
            duplicate=stored.duplicate,
            mailed=stored.mail_queued,
        )
        if stored.mail_queued:
            self._on_mail()

    async def flush_parts(self) -> int:
        """Store the messages whose missing parts stopped coming; wake the mailer."""
        settings = self._settings
        count = await self._storage.flush_inbound_parts(
            now=self._clock(), settings=settings.inbound, domain=_domain(settings)
        )
        if count:
            log.info("inbound_parts_flushed", messages=count)
            self._on_mail()
        return count
