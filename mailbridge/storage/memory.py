"""``MemoryStorage``: the domain layer over plain dicts, for tests of the other modules.

The rules are those of every backend (:mod:`mailbridge.storage.domain`); what
this module adds is the connector: a transaction runs the Python function of
each named query over :class:`~mailbridge.storage.memory_tables.Tables`, the
way the SQL files define them for SQLite and PostgreSQL. The functions are cut
like the domain: ``memory_intake`` (intake and delivery), ``memory_events``
(receipts, SMS from phones), ``memory_mails`` (the mailer's queue),
``memory_admin`` (operators, monitoring), ``memory_retention``. Nothing is
durable. No query awaits anything, so each transaction is atomic on the event
loop. Set ``fail_writes`` to make every write transaction raise
:class:`~mailbridge.errors.StorageError`, as a full disk would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from mailbridge.errors import StorageError
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.storage import (
    memory_admin,
    memory_events,
    memory_intake,
    memory_mails,
    memory_retention,
)
from mailbridge.storage.connector import LocalWakeups, Params, Row, Tx
from mailbridge.storage.domain import Store
from mailbridge.storage.memory_tables import Queries, Tables
from mailbridge.storage.mixin import OfConnector

__all__ = ["QUERIES", "MemoryConnector", "MemoryStorage"]

T = TypeVar("T")

#: Every named query of the memory backend.
QUERIES = Queries()
for _part in (memory_intake, memory_events, memory_mails, memory_admin, memory_retention):
    for _name, _fn in _part.QUERIES.items():
        QUERIES.put(_name, _fn)


class _MemoryTx:
    """A :class:`~mailbridge.storage.connector.Tx` over the dicts: every query a function."""

    __slots__ = ("_db",)

    def __init__(self, db: Tables) -> None:
        self._db = db

    async def one(self, name: str, params: Params) -> Row | None:
        rows = QUERIES[name](self._db, params)
        return rows[0] if rows else None

    async def all(self, name: str, params: Params) -> list[Row]:
        return QUERIES[name](self._db, params)

    async def run(self, name: str, params: Params) -> None:
        QUERIES[name](self._db, params)

    async def run_many(self, name: str, rows: Sequence[Params]) -> None:
        for params in rows:
            QUERIES[name](self._db, params)

    async def claim(self, name: str, params: Params) -> list[Row]:
        return QUERIES[name](self._db, params)

    async def lock(self, keys: Iterable[tuple[str, str]]) -> None:
        """Nothing: no transaction awaits, so none interleaves with another."""

    def pipeline(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    def prune_due(self, now: datetime) -> bool:
        return False  # old limit rows stay; the windows ignore them

    def moment(self, value: Any) -> datetime:
        moment: datetime = value
        return moment


class MemoryConnector(LocalWakeups):
    observer: Observer = NULL_OBSERVER  # nothing to time: no commit

    """The :class:`~mailbridge.storage.connector.Connector` of :class:`MemoryStorage`."""

    def __init__(self) -> None:
        super().__init__()
        self.db = Tables()
        self.fail_writes = False

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release; the data stays for inspection."""

    async def transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool = True) -> T:
        """Run ``work`` on the tables; all or nothing, as in SQL: the tables of a write are
        copied first and put back when ``work`` raises (``accept_all`` refusing a mail)."""
        if not write:
            return await work(_MemoryTx(self.db))
        if self.fail_writes:
            raise StorageError("storage cannot commit (fail_writes is set)")
        saved = self.db.copy()
        try:
            return await work(_MemoryTx(self.db))
        except BaseException:
            self.db = saved
            raise

    async def snapshot(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        return await self.transaction(work, write=False)


class MemoryStorage(Store):
    """The :class:`~mailbridge.storage.base.Storage` contract held in memory."""

    def __init__(self) -> None:
        self.connector = MemoryConnector()
        super().__init__(self.connector)

    fail_writes: OfConnector[bool] = OfConnector(
        "Whether every write raises ``StorageError`` (a full disk, for tests)."
    )
