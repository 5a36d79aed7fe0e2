"""Durable state: one protocol per client (``base``), the rules once (``domain`` and the
parts it is mixed from: ``events_domain``, ``mail_queue``, ``admin``, ``retention``),
a connector per backend (``sqlite``, ``postgres``, ``memory``)."""

from mailbridge.storage.base import (
    DeliveryStore,
    IntakeStore,
    QueueStore,
    ReplyStore,
    Storage,
)

__all__ = ["DeliveryStore", "IntakeStore", "QueueStore", "ReplyStore", "Storage"]
