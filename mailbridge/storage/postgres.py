"""``PostgresStorage``: the storage of several mailbridge instances sharing one PostgreSQL.

The rules are those of every backend (:mod:`mailbridge.storage.domain`); this
module is its connector: the named queries of ``postgres_queries.sql`` and how
concurrency is made safe when several processes on several hosts write at once:

* every method is one transaction (READ COMMITTED) on a connection of a pool
  (``psycopg_pool``), with ``synchronous_commit = on`` set on each connection:
  ``accept`` returns only after the COMMIT is flushed to the server's WAL, so a
  250 is durable. PostgreSQL groups the WAL flushes of concurrent commits
  itself, so no group commit is layered on top;
* shared limit state (duplicates 9, flood 8, balance 3, IP errors 4, reply
  rate) is read and written under transaction-level advisory locks, one per
  key (fingerprint, number, account, client IP, reply recipient), taken in
  ascending key order; the reply-rate lock, taken only when a reply may be
  queued, is always the last one. A second instance checking the same key
  waits for the first to commit and then reads its writes, so no update is
  lost and an account is never overspent. Advisory locks also cover keys
  that have no row yet, which ``SELECT … FOR UPDATE`` cannot;
* due SMS rows and reply mails are claimed with ``FOR UPDATE SKIP LOCKED``
  under a lease: each row goes to exactly one instance, and rows of an
  instance that died return to the pool when their lease runs out;
* request numbers come from the identity sequence of ``requests`` (a failed
  transaction may leave a gap);
* after an ``accept`` that stored SMS rows has committed, ``NOTIFY
  mailbridge_due`` is sent (after one that queued a reply, ``NOTIFY
  mailbridge_reply``), from its own statement and coalesced; one
  listening connection per process calls the callbacks given to
  :meth:`~mailbridge.storage.domain.Store.subscribe_due` / ``subscribe_replies``,
  so an idle dispatcher on any instance wakes without polling;
* the schema is created and migrated by :meth:`PostgresStorage.open` in one
  transaction under an advisory lock, so instances starting together migrate
  once.

Requires the ``postgres`` extra (``pip install mailbridge[postgres]``: psycopg 3
with its connection pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString, TypedDict, TypeVar, Unpack

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from mailbridge.core import limits as lim
from mailbridge.errors import StorageError
from mailbridge.log import get_logger
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.settings import LimitsSettings
from mailbridge.storage.base import Callback, Unsubscribe
from mailbridge.storage.connector import (
    Channel,
    Params,
    Row,
    Subscribers,
    Tx,
    migrations,
    named_queries,
    pending,
)
from mailbridge.storage.domain import Store

__all__ = [
    "DUE_CHANNEL",
    "MIGRATIONS",
    "QUERIES",
    "REPLY_CHANNEL",
    "PoolOptions",
    "PostgresConnector",
    "PostgresStorage",
    "lock_key",
    "redact_url",
]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Work = Callable[[Conn], Awaitable[T]]

#: The channel a commit of due rows notifies.
DUE_CHANNEL = Channel.DUE.value
#: The channel a commit of a queued reply notifies.
REPLY_CHANNEL = Channel.REPLIES.value

#: Attempts of a transaction that PostgreSQL aborted as a deadlock or serialisation failure.
_RETRIES = 5
#: Accepts between two sweeps of expired limit rows of keys not seen again.
_SWEEP_EVERY = 500
#: Longest pause of the listening connection between reconnects.
_LISTEN_BACKOFF_MAX_S = 30.0

_log = get_logger("mailbridge.storage.postgres")


#: The named queries of ``postgres_queries.sql`` (trusted text shipped with the program).
QUERIES: dict[str, LiteralString] = named_queries("postgres_queries.sql")

#: The migrations of ``postgres_schema.sql``, in order: migration n brings the version to n.
MIGRATIONS: tuple[LiteralString, ...] = tuple(migrations("postgres_schema.sql"))

Q = QUERIES

_SCHEMA_TABLE: LiteralString = (
    "CREATE TABLE IF NOT EXISTS mailbridge_schema (version integer NOT NULL)"
)
#: Each pooled connection: commits flushed before they return (a 250 is durable), UTC, and
#: a lock waited for at most ``wait_timeout_s``.
_SESSION = sql.SQL("SET synchronous_commit TO on; SET TIME ZONE 'UTC'; SET lock_timeout TO {}")


def lock_key(kind: str, value: str) -> int:
    """The 64-bit advisory lock key of one limit key (a collision only serialises more)."""
    digest = hashlib.blake2b(f"mailbridge\0{kind}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_MIGRATE_KEY = lock_key("migrate", "schema")

_URL_PASSWORD_RE = re.compile(r"(://[^:/@?]*:)[^@/?]*@")
_PARAM_PASSWORD_RE = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and errors)."""
    return _PARAM_PASSWORD_RE.sub(r"\1***", _URL_PASSWORD_RE.sub(r"\1***@", url))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _storage_error(exc: BaseException) -> StorageError:
    sqlstate = getattr(exc, "sqlstate", None)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    err = StorageError(f"postgresql: {first}" + (f" [{sqlstate}]" if sqlstate else ""))
    err.__cause__ = exc
    return err


class PoolOptions(TypedDict, total=False):
    """The optional parameters of :class:`PostgresConnector` (its defaults apply)."""

    min_size: int
    max_size: int
    connect_timeout_s: float
    wait_timeout_s: float


class PostgresConnector:
    """The :class:`~mailbridge.storage.connector.Connector` of a shared PostgreSQL.

    ``url``: a libpq URL (``postgresql://user:password@host:5432/db``; any libpq
    parameter in the query string). ``min_size``/``max_size``: the connection
    pool of this process. ``connect_timeout_s``: how long :meth:`open` waits for
    the server. ``wait_timeout_s``: how long an operation waits for a free
    connection or a lock before failing with ``StorageError`` (the SMTP side
    then answers 451).
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 16,
        connect_timeout_s: float = 10.0,
        wait_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max(min_size, max_size)
        self._connect_timeout_s = connect_timeout_s
        self._wait_timeout_s = wait_timeout_s
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._origin = uuid.uuid4().hex
        self._subscribers = Subscribers()
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._notify_wanted: set[str] = set()
        self._notifier: asyncio.Task[None] | None = None
        self._accepts = 0
        #: Told the duration of each transaction, commit included (``mailbridge.observe``).
        self.observer: Observer = NULL_OBSERVER

    # --- life ---------------------------------------------------------------------

    async def _configure(self, conn: Conn) -> None:
        lock_ms = int(self._wait_timeout_s * 1000)
        await conn.execute(_SESSION.format(sql.Literal(f"{lock_ms}ms")), prepare=False)

    async def open(self) -> None:
        """Connect the pool, create or migrate the schema, start listening if asked to."""
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=self._wait_timeout_s,
            open=False,
            name="mailbridge",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout_s)
        except psycopg.Error as exc:
            await pool.close()
            raise StorageError(
                f"postgresql: cannot connect to {redact_url(self.url)} "
                f"within {self._connect_timeout_s:g} s"
            ) from exc
        self._pool = pool
        try:
            await self.raw(_migrate)
        except BaseException:
            self._pool = None
            await pool.close()
            raise
        if self._subscribers:
            self._start_listener()

    async def close(self) -> None:
        """Stop listening, let background housekeeping finish, close the pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await pool.close()

    async def transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool = True) -> T:
        """Run domain ``work`` in one transaction (READ COMMITTED)."""

        async def run(conn: Conn) -> T:
            return await work(_PgTx(conn))

        return await self.raw(run)

    async def snapshot(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Read-only ``work`` in a transaction of its own (MVCC: it holds up no writer)."""
        return await self.transaction(work, write=False)

    async def raw(self, work: Work[T]) -> T:
        """Run ``work`` in one transaction; retried when PostgreSQL aborts it as a deadlock."""
        pool = self._pool
        if pool is None:
            raise StorageError("storage is not open")
        for attempt in range(1, _RETRIES + 1):
            try:
                started = time.perf_counter()
                async with pool.connection() as conn, conn.transaction():
                    result = await work(conn)
                self.observer.commit(time.perf_counter() - started)
                return result
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                if attempt == _RETRIES:
                    raise _storage_error(exc) from exc
                await asyncio.sleep(0.005 * attempt)
            except psycopg.Error as exc:
                raise _storage_error(exc) from exc
        raise AssertionError("unreachable")

    # --- wake-ups across instances ----------------------------------------------------

    def subscribe(self, channel: Channel, callback: Callback) -> Unsubscribe:
        """Call ``callback`` on the event loop when another process notifies ``channel``;
        also once after each (re)connection of the listener (what was committed while
        nobody listened is found by looking once)."""
        unsubscribe = self._subscribers.add(channel, callback)
        if self._pool is not None:
            self._start_listener()
        return unsubscribe

    def notify(self, channel: Channel, *, here: bool) -> None:
        """Tell the other instances; with ``here`` this one's subscribers too (the listener
        skips this process's own notifications)."""
        self._notify(channel.value)
        if here:
            self._subscribers.fire(channel)

    def _notify(self, channel: str) -> None:
        """Tell the other instances, after a commit, that ``channel`` has work.

        Sent from its own statement after the commit, never inside the committing
        transaction: a NOTIFY there would take PostgreSQL's database-wide notify lock
        and hold it through the WAL flush, serialising every intake of every instance.
        Requests made while one is being sent collapse into one more.
        """
        self._notify_wanted.add(channel)
        if self._notifier is None or self._notifier.done():
            self._notifier = asyncio.create_task(self._send_notifies())
            self._background.add(self._notifier)
            self._notifier.add_done_callback(self._background.discard)

    async def _send_notifies(self) -> None:
        while self._notify_wanted and self._pool is not None:
            channels, self._notify_wanted = sorted(self._notify_wanted), set()
            try:
                async with self._pool.connection() as conn:
                    for channel in channels:
                        await conn.execute(
                            Q["notify"], {"channel": channel, "origin": self._origin}
                        )
            except psycopg.Error as exc:  # the others find the rows at their next look
                _log.warning("notify_failed", error=str(_storage_error(exc)))
                return

    def _start_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="mailbridge-pg-listen")

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=int(self._connect_timeout_s) or 1
                )
                async with conn:
                    await conn.execute(f"LISTEN {DUE_CHANNEL}; LISTEN {REPLY_CHANNEL}")
                    backoff = 0.5
                    # anything committed while not listening is found by looking once now
                    self._subscribers.fire(Channel.DUE)
                    self._subscribers.fire(Channel.REPLIES)
                    async for note in conn.notifies():
                        if note.payload == self._origin:
                            continue
                        if note.channel in (DUE_CHANNEL, REPLY_CHANNEL):
                            self._subscribers.fire(Channel(note.channel))
            except psycopg.Error as exc:
                _log.warning("listen_connection_lost", error=str(_storage_error(exc)))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _LISTEN_BACKOFF_MAX_S)

    def after_intake(self, limits: LimitsSettings, now: datetime) -> None:
        """Every ``_SWEEP_EVERY`` intakes, sweep the limit rows of keys not seen again in
        the background (an intake prunes only its own keys)."""
        self._accepts += 1
        if self._accepts % _SWEEP_EVERY == 0:
            task = asyncio.create_task(self._sweep(limits, now))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def compact(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum makes the space of deleted rows
        reusable for new ones (the files do not shrink; ``VACUUM FULL`` would lock
        the tables, so it is left to the operator)."""

    async def _sweep(self, limits: LimitsSettings, now: datetime) -> None:
        """Delete limit rows that no window counts any more (keys not seen again)."""
        params = {
            "dup": lim.since(now, limits.duplicate_window_s),
            "ip": lim.since(now, limits.error_block_window_s),
            "flood": lim.since(now, limits.flood_gap_s),
        }

        async def work(c: Conn) -> None:
            await c.execute(Q["sweep_duplicates"], {"before": params["dup"]})
            await c.execute(Q["sweep_ip_errors"], {"before": params["ip"]})
            await c.execute(Q["sweep_ip_blocks"], {"now": now})
            await c.execute(Q["sweep_flood"], {"before": params["flood"]})

        try:
            await self.raw(work)
        except StorageError as exc:
            _log.warning("sweep_failed", error=str(exc))


class _PgTx:
    """A :class:`~mailbridge.storage.connector.Tx` on one pooled connection."""

    __slots__ = ("_c",)

    def __init__(self, conn: Conn) -> None:
        self._c = conn

    async def one(self, name: str, params: Params) -> Row | None:
        row: Row | None = await (await self._c.execute(Q[name], params)).fetchone()
        return row

    async def all(self, name: str, params: Params) -> list[Row]:
        return await (await self._c.execute(Q[name], params)).fetchall()

    async def run(self, name: str, params: Params) -> None:
        if Q[name]:
            await self._c.execute(Q[name], params)

    async def run_many(self, name: str, rows: Sequence[Params]) -> None:
        if Q[name] and rows:
            async with self._c.cursor() as cur:
                await cur.executemany(Q[name], rows)

    async def claim(self, name: str, params: Params) -> list[Row]:
        """One ``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``."""
        return await self.all(name, params)

    async def lock(self, keys: Iterable[tuple[str, str]]) -> None:
        """Transaction-level advisory locks, in ascending key order (no deadlock)."""
        ordered = sorted({lock_key(kind, value) for kind, value in keys})
        if ordered:
            await self._c.execute(Q["lock_keys"], {"keys": ordered})

    @contextlib.asynccontextmanager
    async def pipeline(self) -> AsyncIterator[None]:
        """psycopg's pipeline mode: the writes go in one round trip."""
        async with self._c.pipeline():
            yield

    def prune_due(self, now: datetime) -> bool:
        return False  # each intake prunes its own keys; after_intake sweeps the rest

    def moment(self, value: Any) -> datetime:
        return _utc(value)


class PostgresStorage(Store):
    """The :class:`~mailbridge.storage.base.Storage` contract on a shared PostgreSQL.

    The parameters are those of :class:`PostgresConnector`.
    """

    def __init__(self, url: str, **options: Unpack[PoolOptions]) -> None:
        self.url = url
        self.connector = PostgresConnector(url, **options)
        super().__init__(self.connector)

    def __repr__(self) -> str:
        return f"PostgresStorage({redact_url(self.url)!r})"


async def _migrate(c: Conn) -> None:
    await c.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATE_KEY])
    await c.execute(_SCHEMA_TABLE)
    row = await (await c.execute("SELECT version FROM mailbridge_schema")).fetchone()
    if row is None:
        await c.execute("INSERT INTO mailbridge_schema (version) VALUES (0)")
        version = 0
    else:
        version = int(row[0])
    for number in pending(version, len(MIGRATIONS)):
        await c.execute(MIGRATIONS[number - 1], prepare=False)
        await c.execute("UPDATE mailbridge_schema SET version = %s", [number])
