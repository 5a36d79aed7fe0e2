"""``PostgresStorage``: the storage of several mailbridge instances sharing one PostgreSQL.

Same contract and behaviour as :class:`~mailbridge.storage.sqlite.SqliteStorage`
(the decisions come from :mod:`mailbridge.storage.common` and
:mod:`mailbridge.core.limits`); what changes is how concurrency is made safe when
several processes on several hosts write at once:

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
  :meth:`PostgresStorage.subscribe_due` / :meth:`PostgresStorage.subscribe_replies`,
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
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, LiteralString, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from mailbridge.core import limits as lim
from mailbridge.core.answers import error_line
from mailbridge.errors import StorageError
from mailbridge.log import get_logger
from mailbridge.models import Encoding, Format, SmsState
from mailbridge.settings import LimitsSettings
from mailbridge.storage.base import (
    AcceptResult,
    Attempt,
    Intake,
    QueueStats,
    ReplyJob,
    ReplyView,
    RequestDetail,
    RequestSummary,
    SmsJob,
    SmsView,
)
from mailbridge.storage.common import (
    FOLLOWUP_ERROR,
    IntakeSnapshot,
    effective_fingerprint,
    failure_outcome,
    from_ts,
    plan_intake,
    result_line,
    shorten,
    sms_drafts,
    to_ts,
    validate_intake,
)
from mailbridge.storage.sqlite import load_sql_blocks

__all__ = [
    "DUE_CHANNEL",
    "MIGRATIONS",
    "QUERIES",
    "REPLY_CHANNEL",
    "PostgresStorage",
    "lock_key",
    "redact_url",
]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Work = Callable[[Conn], Awaitable[T]]

#: The channel a commit of due rows notifies.
DUE_CHANNEL = "mailbridge_due"
#: The channel a commit of a queued reply notifies.
REPLY_CHANNEL = "mailbridge_reply"

#: Attempts of a transaction that PostgreSQL aborted as a deadlock or serialisation failure.
_RETRIES = 5
#: Accepts between two sweeps of expired limit rows of keys not seen again.
_SWEEP_EVERY = 500
#: Longest pause of the listening connection between reconnects.
_LISTEN_BACKOFF_MAX_S = 30.0

_log = get_logger("mailbridge.storage.postgres")


def _read_sql(name: str) -> str:
    return resources.files("mailbridge.storage").joinpath(name).read_text(encoding="utf-8")


#: The named queries of ``postgres_queries.sql`` (trusted text shipped with the program).
QUERIES: dict[str, LiteralString] = load_sql_blocks(_read_sql("postgres_queries.sql"))

#: The migrations of ``postgres_schema.sql``, in order: migration n brings the version to n.
MIGRATIONS: tuple[LiteralString, ...] = tuple(
    sql
    for _, sql in sorted(
        (int(name.split()[1]), sql)
        for name, sql in load_sql_blocks(_read_sql("postgres_schema.sql")).items()
        if name.startswith("migration ")
    )
)

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


def _aware(moment: datetime) -> datetime:
    to_ts(moment)  # refuses naive datetimes, like the other backends
    return moment


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _storage_error(exc: BaseException) -> StorageError:
    sqlstate = getattr(exc, "sqlstate", None)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    err = StorageError(f"postgresql: {first}" + (f" [{sqlstate}]" if sqlstate else ""))
    err.__cause__ = exc
    return err


Callback = Callable[[], None]


class PostgresStorage:
    """The :class:`~mailbridge.storage.base.Storage` contract on a shared PostgreSQL.

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
        self._due_callbacks: list[Callback] = []
        self._reply_callbacks: list[Callback] = []
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._notify_wanted: set[str] = set()
        self._notifier: asyncio.Task[None] | None = None
        self._accepts = 0

    def __repr__(self) -> str:
        return f"PostgresStorage({redact_url(self.url)!r})"

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
            await self._tx(_migrate)
        except BaseException:
            self._pool = None
            await pool.close()
            raise
        if self._due_callbacks or self._reply_callbacks:
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

    async def _tx(self, work: Work[T]) -> T:
        """Run ``work`` in one transaction; retried when PostgreSQL aborts it as a deadlock."""
        pool = self._pool
        if pool is None:
            raise StorageError("storage is not open")
        for attempt in range(1, _RETRIES + 1):
            try:
                async with pool.connection() as conn, conn.transaction():
                    return await work(conn)
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                if attempt == _RETRIES:
                    raise _storage_error(exc) from exc
                await asyncio.sleep(0.005 * attempt)
            except psycopg.Error as exc:
                raise _storage_error(exc) from exc
        raise AssertionError("unreachable")

    # --- wake-ups across instances ----------------------------------------------------

    def subscribe_due(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` (on the event loop) whenever another process or storage object
        commits SMS rows that are due, or puts rows back with ``queue retry``; also once after
        each (re)connection of the listener. Returns a function that unsubscribes.

        The dispatcher passes its ``wake``: ``storage.subscribe_due(dispatcher.wake)``.
        """
        return self._subscribe(self._due_callbacks, callback)

    def subscribe_replies(self, callback: Callback) -> Callable[[], None]:
        """Like :meth:`subscribe_due`, for reply mails queued by another process, and for
        follow-up replies this storage object queues itself (``mark_failed``)."""
        return self._subscribe(self._reply_callbacks, callback)

    def _subscribe(self, callbacks: list[Callback], callback: Callback) -> Callable[[], None]:
        callbacks.append(callback)
        if self._pool is not None:
            self._start_listener()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)

        return unsubscribe

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

    def _fire(self, callbacks: Iterable[Callback]) -> None:
        for callback in list(callbacks):
            try:
                callback()
            except Exception:
                _log.exception("wake-up callback failed")

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
                    self._fire(self._due_callbacks)
                    self._fire(self._reply_callbacks)
                    async for note in conn.notifies():
                        if note.payload == self._origin:
                            continue
                        if note.channel == DUE_CHANNEL:
                            self._fire(self._due_callbacks)
                        elif note.channel == REPLY_CHANNEL:
                            self._fire(self._reply_callbacks)
            except psycopg.Error as exc:
                _log.warning("listen_connection_lost", error=str(_storage_error(exc)))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _LISTEN_BACKOFF_MAX_S)

    # --- intake -----------------------------------------------------------------------

    async def ip_blocked(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Whether ``ip`` is inside an error block."""

        async def work(c: Conn) -> datetime | None:
            row = await (await c.execute(Q["ip_block"], {"ip": ip})).fetchone()
            return None if row is None else cast(datetime, row[0])

        return lim.ip_blocked(await self._tx(work), _aware(now))

    async def record_blocked(self, ip: str, now: datetime) -> None:
        """Count a request refused with ERROR = 4."""

        async def work(c: Conn) -> None:
            await c.execute(Q["record_blocked"], {"ip": ip})

        await self._tx(work)

    async def accept(
        self, intake: Intake, *, limits: LimitsSettings, reply_rate_per_hour: int, now: datetime
    ) -> AcceptResult:
        """Commit one mail and everything derived from it (see the protocol)."""
        validate_intake(intake)
        _aware(now)

        async def work(c: Conn) -> AcceptResult:
            return await _accept(
                c,
                intake=intake,
                limits=limits,
                reply_rate_per_hour=reply_rate_per_hour,
                now=now,
            )

        result = await self._tx(work)
        if result.sms_count:
            self._notify(DUE_CHANNEL)
        if result.reply_queued:
            self._notify(REPLY_CHANNEL)
        self._accepts += 1
        if self._accepts % _SWEEP_EVERY == 0:
            task = asyncio.create_task(self._sweep(limits, now))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return result

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
            await self._tx(work)
        except StorageError as exc:
            _log.warning("sweep_failed", error=str(exc))

    # --- delivery -----------------------------------------------------------------------

    async def next_due(self) -> datetime | None:
        """Earliest time a row becomes claimable (two indexed MINs)."""
        return await self._tx(_read_min(Q["next_due"]))

    async def claim_due(
        self, now: datetime, *, limit: int, lease_s: float, owner: str
    ) -> list[SmsJob]:
        """Lease up to ``limit`` due rows, oldest due first; rows being claimed elsewhere are
        skipped (``SKIP LOCKED``), so each row goes to one instance."""
        if limit <= 0:
            return []
        params = {
            "now": _aware(now),
            "limit": limit,
            "owner": owner,
            "until": now + timedelta(seconds=lease_s),
        }

        async def work(c: Conn) -> list[SmsJob]:
            rows = await (await c.execute(Q["claim_due"], params)).fetchall()
            return [_job(r) for r in sorted(rows, key=lambda r: (r[9], r[0]))]

        return await self._tx(work)

    async def mark_sent(
        self, sms_id: int, *, provider: str, provider_id: str, answer: str, now: datetime
    ) -> None:
        """The provider took the SMS (only a row in ``sending`` moves)."""
        _aware(now)

        async def work(c: Conn) -> None:
            if await (await c.execute(Q["sending_row"], {"id": sms_id})).fetchone() is None:
                return
            await _attempt(c, sms_id, provider, "sent", answer, now)
            await c.execute(
                Q["set_sent"], {"id": sms_id, "provider": provider, "provider_id": provider_id}
            )

        await self._tx(work)

    async def mark_retry(
        self, sms_id: int, *, provider: str, due: datetime, answer: str, now: datetime
    ) -> None:
        """A transient failure: back to ``scheduled`` at ``due``, attempt recorded."""
        _aware(due)
        _aware(now)

        async def work(c: Conn) -> None:
            if await (await c.execute(Q["sending_row"], {"id": sms_id})).fetchone() is None:
                return
            await _attempt(c, sms_id, provider, "temporary", answer, now)
            await c.execute(
                Q["set_retry"],
                {"id": sms_id, "due": due, "provider": provider, "error": shorten(answer)},
            )

        await self._tx(work)

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
        """Final failure: refund the parts, queue the one follow-up reply when due."""
        if state not in (SmsState.FAILED, SmsState.EXPIRED):
            raise ValueError("mark_failed takes the state failed or expired")
        _aware(now)

        async def work(c: Conn) -> bool:
            return await _mark_failed(
                c,
                sms_id=sms_id,
                provider=provider,
                state=state,
                answer=answer,
                now=now,
                reply_rate_per_hour=reply_rate_per_hour,
            )

        if await self._tx(work):
            self._notify(REPLY_CHANNEL)  # the other instances
            self._fire(self._reply_callbacks)  # this one (its own notifies are skipped)

    # --- replies ----------------------------------------------------------------------

    async def next_reply_due(self) -> datetime | None:
        """Earliest time a reply becomes claimable."""
        return await self._tx(_read_min(Q["next_reply_due"]))

    async def claim_replies(self, now: datetime, *, limit: int, lease_s: float) -> list[ReplyJob]:
        """Lease up to ``limit`` due replies, oldest first, each to one instance."""
        if limit <= 0:
            return []
        params = {"now": _aware(now), "limit": limit, "until": now + timedelta(seconds=lease_s)}

        async def work(c: Conn) -> list[ReplyJob]:
            rows = await (await c.execute(Q["claim_replies"], params)).fetchall()
            return [
                ReplyJob(
                    reply_id=r[0],
                    request_id=r[1],
                    to=r[2],
                    subject=r[3],
                    in_reply_to=r[4],
                    references=r[5],
                    body=r[6],
                    attempts=r[7],
                )
                for r in sorted(rows, key=lambda r: (r[8], r[0]))
            ]

        return await self._tx(work)

    async def mark_reply_sent(self, reply_id: int, now: datetime) -> None:
        """The smarthost took the reply."""

        async def work(c: Conn) -> None:
            await c.execute(Q["set_reply_sent"], {"id": reply_id, "now": _aware(now)})

        await self._tx(work)

    async def mark_reply_retry(
        self, reply_id: int, *, due: datetime, error: str, now: datetime
    ) -> None:
        """The smarthost failed: queued again at ``due``."""
        params = {"id": reply_id, "due": _aware(due), "error": shorten(error)}

        async def work(c: Conn) -> None:
            await c.execute(Q["set_reply_retry"], params)

        await self._tx(work)

    # --- operators --------------------------------------------------------------------

    async def list_requests(
        self, *, state: SmsState | None = None, account: str | None = None, limit: int = 100
    ) -> Sequence[RequestSummary]:
        """Requests, newest first, optionally those with a row in ``state`` / of ``account``."""
        if limit <= 0:
            return []
        params = {
            "state": state.value if state is not None else None,
            "account": account,
            "limit": limit,
        }

        async def work(c: Conn) -> list[RequestSummary]:
            rows = await (await c.execute(Q["list_requests"], params)).fetchall()
            return await _summaries(c, rows)

        return await self._tx(work)

    async def show_request(self, request_id: str) -> RequestDetail | None:
        """The newest request with ``request_id``, with its rows and attempts."""

        async def work(c: Conn) -> RequestDetail | None:
            return await _show_request(c, request_id)

        return await self._tx(work)

    async def queue_stats(self, now: datetime) -> QueueStats:
        """SMS rows by state, the oldest due one, replies waiting; one read transaction."""

        async def work(c: Conn) -> QueueStats:
            rows = await (await c.execute(Q["queue_states"])).fetchall()
            oldest = await (await c.execute(Q["oldest_due"], {"now": _aware(now)})).fetchone()
            waiting = await (await c.execute(Q["replies_waiting"])).fetchone()
            return QueueStats(
                by_state={str(state): int(n) for state, n in rows},
                oldest_due=None if oldest is None or oldest[0] is None else oldest[0],
                replies_waiting=int(waiting[0]) if waiting is not None else 0,
            )

        return await self._tx(work)

    async def retry_request(self, request_id: str, now: datetime) -> int:
        """Failed/expired/cancelled rows back to ``scheduled`` now (charged again)."""
        _aware(now)

        async def work(c: Conn) -> int:
            req = await (
                await c.execute(Q["newest_request"], {"request_id": request_id})
            ).fetchone()
            if req is None:
                return 0
            rows = await (await c.execute(Q["retryable_rows"], {"pk": req[0]})).fetchall()
            if not rows:
                return 0
            await c.execute(Q["reschedule"], {"ids": [r[0] for r in rows], "now": now})
            if req[12] and req[2] is not None:
                await c.execute(Q["charge"], {"account": req[2], "parts": sum(r[1] for r in rows)})
            return len(rows)

        count = await self._tx(work)
        if count:
            self._notify(DUE_CHANNEL)
        return count

    async def cancel_request(self, request_id: str, now: datetime) -> int:
        """Cancel the scheduled rows of the request, refunding their parts."""

        async def work(c: Conn) -> int:
            req = await (
                await c.execute(Q["newest_request"], {"request_id": request_id})
            ).fetchone()
            if req is None:
                return 0
            rows = await (await c.execute(Q["scheduled_rows"], {"pk": req[0]})).fetchall()
            if not rows:
                return 0
            await c.execute(Q["cancel_rows"], {"ids": [r[0] for r in rows]})
            if req[12] and req[2] is not None:
                await c.execute(Q["charge"], {"account": req[2], "parts": -sum(r[1] for r in rows)})
            return len(rows)

        return await self._tx(work)


# --- the work of each operation, inside its transaction ---------------------------------


def _read_min(query: LiteralString) -> Work[datetime | None]:
    """A transaction reading one nullable time."""

    async def work(c: Conn) -> datetime | None:
        row = await (await c.execute(query)).fetchone()
        return None if row is None or row[0] is None else _utc(row[0])

    return work


async def _migrate(c: Conn) -> None:
    await c.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATE_KEY])
    await c.execute(_SCHEMA_TABLE)
    row = await (await c.execute("SELECT version FROM mailbridge_schema")).fetchone()
    if row is None:
        await c.execute("INSERT INTO mailbridge_schema (version) VALUES (0)")
        version = 0
    else:
        version = int(row[0])
    if version > len(MIGRATIONS):
        raise StorageError(
            f"the database schema (version {version}) is newer than this program knows"
        )
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        await c.execute(script, prepare=False)
        await c.execute("UPDATE mailbridge_schema SET version = %s", [number])


async def _lock(c: Conn, keys: Iterable[int]) -> None:
    ordered = sorted(set(keys))
    if ordered:
        await c.execute(Q["lock_keys"], {"keys": ordered})


async def _scalar(c: Conn, query: LiteralString, params: dict[str, Any]) -> Any:
    row = await (await c.execute(query, params)).fetchone()
    return None if row is None else row[0]


async def _count_replies(c: Conn, recipient: str, now: datetime) -> int:
    """Replies to ``recipient`` within the hour, under the recipient's lock (always taken last)."""
    await _lock(c, [lock_key("reply", recipient)])
    params = {"recipient": recipient, "since": now - lim.REPLY_RATE_WINDOW}
    return int(await _scalar(c, Q["count_replies"], params))


async def _accept(
    c: Conn,
    *,
    intake: Intake,
    limits: LimitsSettings,
    reply_rate_per_hour: int,
    now: datetime,
) -> AcceptResult:
    request = intake.request
    fingerprint = effective_fingerprint(intake)
    numbers = list(dict.fromkeys(request.recipients if request else ()))
    ip_error = lim.counts_as_ip_error(intake.error)
    dup_since = lim.since(now, limits.duplicate_window_s)
    ip_since = lim.since(now, limits.error_block_window_s)

    # 1. the locks of every key this intake reads and writes (the reply one comes later)
    keys = [lock_key("flood", n) for n in numbers]
    if fingerprint is not None:
        keys.append(lock_key("dup", fingerprint))
    if request is not None and intake.balance is not None and intake.account is not None:
        keys.append(lock_key("balance", intake.account))
    if ip_error:
        keys.append(lock_key("ip", intake.client_ip))
    await _lock(c, keys)

    # 2. the counters, read after the locks: every earlier writer has committed
    snap = await (
        await c.execute(
            Q["snapshot"],
            {
                "with_pk": not intake.client_id,
                "fingerprint": fingerprint,
                "dup_since": dup_since,
                "account": intake.account if request is not None else None,
                "numbers": numbers,
                "now": now,
                "ip": intake.client_ip if ip_error else None,
                "ip_since": ip_since,
            },
        )
    ).fetchone()
    assert snap is not None
    new_pk, duplicates, charged_now, flood_rows, ip_rows = snap
    charged = int(charged_now or 0)
    flood = {
        number: lim.FloodState(last_at=from_ts(epoch), streak=streak)
        for number, epoch, streak in flood_rows or ()
    }
    ip_errors = tuple(_utc(at) for at in ip_rows)
    snapshot = IntakeSnapshot(
        duplicates=duplicates, flood=flood, charged=charged, ip_errors=ip_errors
    )
    plan = plan_intake(
        intake, snapshot, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
    )
    reply = intake.reply
    if plan.queue_reply and reply is not None:
        # a reply may go: count the recipient's replies under its lock, then decide for good
        replies = await _count_replies(c, reply.to, now)
        snapshot = IntakeSnapshot(
            duplicates=duplicates,
            flood=flood,
            charged=charged,
            replies_last_hour=replies,
            ip_errors=ip_errors,
        )
        plan = plan_intake(
            intake, snapshot, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
        )

    # 3. the writes; a client id that cannot be answered fails before the sequence moves
    if intake.client_id:
        request_id = intake.client_id
        line = result_line(plan.error, plan.sms_count, request_id)
        pk = int(await _scalar(c, Q["next_request_pk"], {}))
    else:
        pk = int(new_pk)
        request_id = str(pk)
        line = result_line(plan.error, plan.sms_count, request_id)
    drafts = sms_drafts(request) if request is not None and plan.error is None else []
    async with c.pipeline():
        await c.execute(
            Q["insert_request"],
            {
                "pk": pk,
                "request_id": request_id,
                "account": intake.account,
                "client_ip": intake.client_ip,
                "mail_from": intake.mail_from,
                "rcpt_to": list(intake.rcpt_to),
                "mode": intake.mode,
                "received_at": intake.received_at,
                "result": line,
                "error": plan.error,
                "error_detail": intake.error_detail,
                "test": intake.test,
                "sender": request.sender if request else None,
                "format": int(request.format) if request else None,
                "translit": request.translit if request else None,
                "due": request.due if request else None,
                "sms_total": plan.sms_count,
                "charged": bool(plan.charge),
                "reply_to": reply.to if reply else None,
                "reply_subject": reply.subject if reply else None,
                "reply_in_reply_to": reply.in_reply_to if reply else None,
                "reply_references": reply.references if reply else None,
            },
        )
        await c.execute(Q["insert_mail"], {"request_pk": pk, "raw": intake.raw})
        if request is not None and drafts:
            await c.execute(
                Q["insert_sms"],
                {
                    "request_pk": pk,
                    "sender": request.sender,
                    "format": int(request.format),
                    "due": request.due,
                    "subject": request.subject,
                    "voice": request.voice,
                    "param": request.param,
                    "recipients": [d.recipient for d in drafts],
                    "texts": [d.text for d in drafts],
                    "encodings": [d.encoding.value for d in drafts],
                    "parts": [d.parts for d in drafts],
                },
            )
        if plan.flood:
            await c.execute(
                Q["save_flood"],
                {
                    "numbers": list(plan.flood),
                    "last_at": [s.last_at for s in plan.flood.values()],
                    "streaks": [s.streak for s in plan.flood.values()],
                },
            )
        if plan.duplicate is not None:
            await c.execute(
                Q["prune_duplicates"], {"fingerprint": plan.duplicate, "before": dup_since}
            )
            await c.execute(Q["insert_duplicate"], {"fingerprint": plan.duplicate, "at": now})
        if plan.charge and intake.account is not None:
            await c.execute(Q["charge"], {"account": intake.account, "parts": plan.charge})
        if plan.ip_error:
            await c.execute(Q["prune_ip_errors"], {"ip": intake.client_ip, "before": ip_since})
            await c.execute(Q["insert_ip_error"], {"ip": intake.client_ip, "at": now})
        if plan.block_until is not None:
            await c.execute(Q["prune_ip_block"], {"ip": intake.client_ip, "now": now})
            await c.execute(Q["save_ip_block"], {"ip": intake.client_ip, "until": plan.block_until})
        if plan.queue_reply and reply is not None:
            await c.execute(
                Q["insert_reply"],
                {
                    "request_pk": pk,
                    "recipient": reply.to,
                    "subject": reply.subject,
                    "in_reply_to": reply.in_reply_to,
                    "refs": reply.references,
                    "body": line,
                    "now": now,
                },
            )
    return AcceptResult(
        request_id=request_id,
        error=plan.error,
        sms_count=plan.sms_count,
        line=line,
        reply_queued=plan.queue_reply,
    )


def _job(r: Sequence[Any]) -> SmsJob:
    return SmsJob(
        sms_id=r[0],
        request_id=r[1],
        account=r[2] or "",
        recipient=r[3],
        text=r[4],
        sender=r[5],
        format=Format(r[6]),
        encoding=Encoding(r[7]),
        parts=r[8],
        due=_utc(r[9]),
        first_due=_utc(r[10]),
        attempts=r[11],
        subject=r[12],
        voice=r[13],
        param=r[14],
        last_provider=r[15],
    )


async def _attempt(
    c: Conn, sms_id: int, provider: str, outcome: str, answer: str, now: datetime
) -> None:
    await c.execute(
        Q["insert_attempt"],
        {
            "sms_id": sms_id,
            "at": now,
            "provider": provider,
            "outcome": outcome,
            "answer": shorten(answer),
        },
    )


async def _mark_failed(
    c: Conn,
    *,
    sms_id: int,
    provider: str | None,
    state: SmsState,
    answer: str,
    now: datetime,
    reply_rate_per_hour: int,
) -> bool:
    """Settle a row as failed; whether a follow-up reply was queued."""
    row = await (await c.execute(Q["sending_row"], {"id": sms_id})).fetchone()
    if row is None:
        return False
    (_, parts, pk, request_id, account, charged, error, test, _followup, *reply) = row
    if provider is not None:
        await _attempt(c, sms_id, provider, failure_outcome(state), answer, now)
    await c.execute(
        Q["set_failed"],
        {
            "id": sms_id,
            "state": state.value,
            "attempted": 1 if provider is not None else 0,
            "provider": provider,
            "error": shorten(answer),
        },
    )
    if charged and account is not None:
        await c.execute(Q["charge"], {"account": account, "parts": -parts})
    reply_to, subject, in_reply_to, references = reply
    if error is not None or test != 1 or reply_to is None:
        return False
    # one follow-up per request, whichever instance fails which of its rows first
    if await _scalar(c, Q["lock_request"], {"pk": pk}):
        return False
    sent = await _count_replies(c, reply_to, now)
    if not lim.reply_allowed(sent, reply_rate_per_hour):
        return False
    await c.execute(Q["set_followup_sent"], {"pk": pk})
    await c.execute(
        Q["insert_reply"],
        {
            "request_pk": pk,
            "recipient": reply_to,
            "subject": subject,
            "in_reply_to": in_reply_to,
            "refs": references,
            "body": error_line(FOLLOWUP_ERROR, request_id),
            "now": now,
        },
    )
    return True


async def _summaries(c: Conn, rows: Sequence[Sequence[Any]]) -> list[RequestSummary]:
    states: dict[int, dict[str, int]] = {}
    if rows:
        for pk, state, count in await (
            await c.execute(Q["request_states"], {"pks": [r[0] for r in rows]})
        ).fetchall():
            states.setdefault(pk, {})[state] = count
    return [
        RequestSummary(
            request_id=r[1],
            account=r[2],
            received_at=_utc(r[3]),
            mode=r[4],
            result=r[5],
            sms_total=r[6],
            states=states.get(r[0], {}),
        )
        for r in rows
    ]


async def _show_request(c: Conn, request_id: str) -> RequestDetail | None:
    req = await (await c.execute(Q["newest_request"], {"request_id": request_id})).fetchone()
    if req is None:
        return None
    pk = req[0]
    attempts: dict[int, list[Attempt]] = {}
    for sms_id, at, provider, outcome, answer in await (
        await c.execute(Q["request_attempts"], {"pk": pk})
    ).fetchall():
        attempts.setdefault(sms_id, []).append(
            Attempt(at=_utc(at), provider=provider, outcome=outcome, answer=answer)
        )
    sms = tuple(
        SmsView(
            sms_id=r[0],
            recipient=r[1],
            state=SmsState(r[2]),
            parts=r[3],
            due=_utc(r[4]),
            provider=r[5],
            provider_id=r[6],
            attempts=tuple(attempts.get(r[0], ())),
            error=r[7],
        )
        for r in await (await c.execute(Q["request_sms"], {"pk": pk})).fetchall()
    )
    replies = tuple(
        ReplyView(
            reply_id=r[0],
            to=r[1],
            state=r[2],
            attempts=r[3],
            body=r[4],
            due=_utc(r[5]),
            sent_at=None if r[6] is None else _utc(r[6]),
        )
        for r in await (await c.execute(Q["request_replies"], {"pk": pk})).fetchall()
    )
    (summary,) = await _summaries(c, [req])
    return RequestDetail(
        summary=summary,
        client_ip=req[7],
        mail_from=req[8],
        sender=req[9],
        format=req[10],
        due=None if req[11] is None else _utc(req[11]),
        sms=sms,
        replies=replies,
    )
