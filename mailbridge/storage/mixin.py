"""The base of the parts the domain's :class:`~mailbridge.storage.domain.Store` is made of.

:class:`Store` is one class per client's job mixed together: intake and
delivery (:mod:`~mailbridge.storage.domain`), receipts and SMS from phones
(:mod:`~mailbridge.storage.events_domain`), the mailer's queue
(:mod:`~mailbridge.storage.mail_queue`), operators and monitoring
(:mod:`~mailbridge.storage.admin`) and retention
(:mod:`~mailbridge.storage.retention`). :class:`StoreMixin` is what they
share: the connector they run their named queries on, and the two shapes of
transaction several of them need (one write query; one nullable time read).
:class:`OfConnector` makes an attribute of a store one of its connector
(``observer``; the memory backend's ``fail_writes``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar, overload

from mailbridge.storage.connector import Connector, Params, Tx

__all__ = ["OfConnector", "StoreMixin"]

V = TypeVar("V")


class StoreMixin:
    """``self._connector`` and the one-query transactions (see the module docstring)."""

    _connector: Connector

    async def _write(self, query: str, params: Params) -> None:
        """Run the write query ``query`` alone, in a transaction of its own."""

        async def work(tx: Tx) -> None:
            await tx.run(query, params)

        await self._connector.transaction(work)

    async def _read_time(self, query: str) -> datetime | None:
        """The one nullable time the read query ``query`` gives."""

        async def work(tx: Tx) -> datetime | None:
            row = await tx.one(query, {})
            return None if row is None or row[0] is None else tx.moment(row[0])

        return await self._connector.transaction(work, write=False)


class OfConnector(Generic[V]):
    """An attribute of a store that is its connector's, read and set there."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, store: None, owner: type) -> OfConnector[V]: ...

    @overload
    def __get__(self, store: StoreMixin, owner: type) -> V: ...

    def __get__(self, store: StoreMixin | None, owner: type) -> OfConnector[V] | V:
        if store is None:
            return self
        value: V = getattr(store._connector, self._name)
        return value

    def __set__(self, store: StoreMixin, value: V) -> None:
        setattr(store._connector, self._name, value)
