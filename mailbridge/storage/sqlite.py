"""``SqliteStorage``: the embedded storage, one SQLite file in WAL mode.

The rules are those of every backend (:mod:`mailbridge.storage.domain`); this
module is their connector: the named queries of ``sqlite_queries.sql``, run by
one writer thread.

The writer thread, its group commit and its file lock are
:mod:`mailbridge.storage.sqlite_writer`; here are the named queries and the
schema, how the domain's parameters are bound (sqlite3 adapters), the
:class:`~mailbridge.storage.connector.Tx` on the writer's connection, the
read-only snapshots, and the migrations and compaction.

Nothing is cached per row in Python: claiming reads two partial indexes
(scheduled rows by due time, sending rows by lease end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from mailbridge.core.pipeline import run_now
from mailbridge.errors import StorageError
from mailbridge.models import (
    AttemptOutcome,
    Encoding,
    Format,
    InboundState,
    ReplyState,
    RouteKind,
    SmsState,
)
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.storage.common import from_ts, to_ts
from mailbridge.storage.connector import (
    LocalWakeups,
    Params,
    Row,
    Tx,
    migrations,
    named_queries,
    pending,
)
from mailbridge.storage.domain import Store
from mailbridge.storage.sqlite_writer import Op, Writer, WriterStats, prune_now, storage_error

__all__ = ["MIGRATIONS", "QUERIES", "SqliteConnector", "SqliteStorage", "WriterStats"]

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]


def _statements(script: str) -> list[str]:
    """Split a script into complete statements."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip() and not current.strip().startswith("--"):
        raise ValueError("an SQL script ends inside a statement")
    return out


#: The named queries of ``sqlite_queries.sql``.
QUERIES: dict[str, str] = named_queries("sqlite_queries.sql")

#: The migrations of ``sqlite_schema.sql``, in order: migration n brings user_version to n.
MIGRATIONS: tuple[tuple[str, ...], ...] = tuple(
    tuple(_statements(sql)) for sql in migrations("sqlite_schema.sql")
)

Q = QUERIES


class _SqliteTx:
    """A :class:`~mailbridge.storage.connector.Tx` on the writer's connection (times go
    in as epoch seconds, lists as JSON text: the adapters below); nothing awaits, so the
    writer thread runs the domain's work to its end in one step."""

    __slots__ = ("_c",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    async def one(self, name: str, params: Params) -> Row | None:
        row: Row | None = self._c.execute(Q[name], params).fetchone()
        return row

    async def all(self, name: str, params: Params) -> list[Row]:
        return self._c.execute(Q[name], params).fetchall()

    async def run(self, name: str, params: Params) -> None:
        sql = Q[name]
        if sql:
            self._c.execute(sql, params)

    async def run_many(self, name: str, rows: Sequence[Params]) -> None:
        sql = Q[name]
        if sql and rows:
            self._c.executemany(sql, rows)

    async def claim(self, name: str, params: Params) -> list[Row]:
        """The rows of query ``name``, then ``<name>_lease`` for each (one writer: no race)."""
        rows = self._c.execute(Q[name], params).fetchall()
        self._c.executemany(Q[f"{name}_lease"], [{**params, "id": r[0]} for r in rows])
        return rows

    async def lock(self, keys: Iterable[tuple[str, str]]) -> None:
        """Nothing: one writer thread, and the file lock between processes."""

    def pipeline(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _NO_PIPELINE

    def prune_due(self, now: datetime) -> bool:
        return prune_now(self._c, to_ts(now))

    def moment(self, value: Any) -> datetime:
        return from_ts(value)


#: One connection, in process: nothing to send together (reusable).
_NO_PIPELINE: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()


# How the domain's parameters are stored, looked up by sqlite3 itself (in C) for the
# types it cannot bind as they are: aware times as epoch seconds (naive ones raise
# ValueError), lists as JSON text (read with json_each), flags as 0/1. Registered for
# the process: only this module talks to SQLite.
sqlite3.register_adapter(datetime, to_ts)
sqlite3.register_adapter(list, json.dumps)
sqlite3.register_adapter(tuple, json.dumps)
sqlite3.register_adapter(bool, int)
# Bound as they are, but sqlite3 looks every value that is not exactly an int, float or
# str up in its adapters, and a miss costs an AttributeError formatted and dropped
# (≈ 2 000 instructions, 9 a mail): NULLs, the raw mail and the enums get an adapter
# of their own that hands back the same value ({}.get(None) is None), the enums' own.
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))
sqlite3.register_adapter(bytes, bytes)
for _enum in (Encoding, SmsState, AttemptOutcome, InboundState, ReplyState, RouteKind):
    sqlite3.register_adapter(_enum, str)
sqlite3.register_adapter(Format, int)


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run domain work that never suspends (every query of ``_SqliteTx`` is synchronous)."""
    return run_now(coro, "SQLite work awaited something other than its connection")


class SqliteConnector(LocalWakeups):
    """The :class:`~mailbridge.storage.connector.Connector` of one SQLite file.

    ``busy_timeout_s``: how long a transaction waits for a lock held by another
    process (``mailbridge queue …``) before failing with ``StorageError``.
    ``max_batch``: most operations per transaction (1 turns group commit off).
    """

    def __init__(self, path: Path, *, busy_timeout_s: float, max_batch: int) -> None:
        super().__init__()
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max_batch
        self._writer: Writer | None = None
        self._closed = False
        self._reader: sqlite3.Connection | None = None  # snapshot() only
        self._reader_lock = threading.Lock()
        #: Told the duration of each write transaction (set before ``open``).
        self.observer: Observer = NULL_OBSERVER

    @property
    def stats(self) -> WriterStats:
        """Committed transactions and the operations they held, since open."""
        w = self._writer
        return WriterStats(
            transactions=w.transactions if w else 0, operations=w.operations if w else 0
        )

    async def call(self, work: Work[T], *, write: bool = True, bare: bool = False) -> T:
        """Run ``work`` on the writer thread, inside the next group's transaction
        (``bare``: alone, outside any transaction)."""
        writer = self._writer
        if writer is None or self._closed:
            raise StorageError("storage is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        writer.submit(Op(work=work, write=write, loop=loop, future=future, bare=bare))
        return await future

    async def compact(self) -> None:
        """Free pages back to the file system a little at a time (each step a short write
        transaction, so intake goes on between them), then truncate the WAL."""
        while await self.call(_vacuum_step):
            pass
        await self.call(_checkpoint, bare=True)

    async def transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool = True) -> T:
        def run(conn: sqlite3.Connection) -> T:
            return _drive(work(_SqliteTx(conn)))  # type: ignore[arg-type]

        return await self.call(run, write=write)

    async def snapshot(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run read-only ``work`` on a read-only connection of its own, in a worker thread.

        WAL: readers never block the writer, and this keeps long reads off the writer
        thread (counting every row by state scans the per-request index: ≈ 90 ms over
        200 000 rows, measured), where they would hold up commits.
        """
        if self._writer is None or self._closed:
            raise StorageError("storage is not open")
        if str(self.path) == ":memory:":  # nothing another connection could see
            return await self.transaction(work, write=False)
        return await asyncio.to_thread(self._read, work)

    def _read(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        with self._reader_lock:
            try:
                if self._reader is None:
                    self._reader = sqlite3.connect(
                        f"file:{self.path}?mode=ro",
                        uri=True,
                        timeout=self._busy_timeout_s,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                self._reader.execute("BEGIN")
                try:
                    return _drive(work(_SqliteTx(self._reader)))  # type: ignore[arg-type]
                finally:
                    self._reader.execute("COMMIT")
            except sqlite3.Error as exc:
                raise storage_error(exc) from exc

    async def open(self) -> None:
        """Start the writer thread, connect, and create or migrate the schema."""
        if self._writer is not None and not self._closed:
            return
        self._closed = False
        self._writer = Writer(
            str(self.path),
            busy_timeout_s=self._busy_timeout_s,
            max_batch=self._max_batch,
            observer=self.observer,
        )
        self._writer.start()
        try:
            await self.call(_migrate)
        except BaseException:
            writer, self._writer = self._writer, None
            writer.stop()
            await asyncio.to_thread(writer.join)
            raise

    async def close(self) -> None:
        """Finish the queued work, close the connection and stop the thread."""
        writer = self._writer
        if writer is None or self._closed:
            return
        self._closed = True
        writer.stop()
        await asyncio.to_thread(writer.join)
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


class SqliteStorage(Store):
    """The :class:`~mailbridge.storage.base.Storage` contract on one SQLite file."""

    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 5.0, max_batch: int = 256
    ) -> None:
        self.path = Path(path)
        self.connector = SqliteConnector(
            self.path, busy_timeout_s=busy_timeout_s, max_batch=max_batch
        )
        super().__init__(self.connector)

    @property
    def stats(self) -> WriterStats:
        """Committed transactions and the operations they held, since open."""
        return self.connector.stats


#: Pages freed per step of ``compact`` (4 MiB with 4 KiB pages).
VACUUM_STEP_PAGES = 1024


def _vacuum_step(c: sqlite3.Connection) -> bool:
    """Free up to VACUUM_STEP_PAGES pages; whether free pages are left."""
    c.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})").fetchall()
    return bool(c.execute("PRAGMA freelist_count").fetchone()[0])


def _checkpoint(c: sqlite3.Connection) -> None:
    """Copy the WAL into the database and truncate it to zero bytes."""
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _migrate(c: sqlite3.Connection) -> None:
    version = c.execute("PRAGMA user_version").fetchone()[0]
    for number in pending(version, len(MIGRATIONS)):
        for statement in MIGRATIONS[number - 1]:
            c.execute(statement)
        c.execute(f"PRAGMA user_version = {number}")
