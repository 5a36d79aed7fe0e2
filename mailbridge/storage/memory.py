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
import copy
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from mailbridge.core.records import AcceptResult, Intake
from mailbridge.errors import StorageError
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.settings import LimitsSettings
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
        if write and self.fail_writes:
            raise StorageError("storage cannot commit (fail_writes is set)")
        return await work(_MemoryTx(self.db))

    async def snapshot(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        return await self.transaction(work, write=False)


class MemoryStorage(Store):
    """The :class:`~mailbridge.storage.base.Storage` contract held in memory."""

    def __init__(self) -> None:
        self.connector = MemoryConnector()
        super().__init__(self.connector)

    async def accept_all(
        self,
        intakes: Sequence[Intake],
        *,
        limits: LimitsSettings,
        reply_rate_per_hour: int,
        now: datetime,
    ) -> list[AcceptResult]:
        """As the other backends, all or none: memory has no rollback, so the tables are
        copied first and put back when the mail is refused."""
        saved = copy.deepcopy(self.connector.db)
        results = await super().accept_all(
            intakes, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
        )
        if len(results) == 1 and results[0].error is not None:
            self.connector.db = saved
        return results

    @property
    def fail_writes(self) -> bool:
        """Whether every write raises ``StorageError`` (a full disk, for tests)."""
        return self.connector.fail_writes

    @fail_writes.setter
    def fail_writes(self, value: bool) -> None:
        self.connector.fail_writes = value
