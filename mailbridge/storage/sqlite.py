"""``SqliteStorage``: the embedded storage, one SQLite file in WAL mode.

All database work runs on ONE writer thread that owns the connection, so the
event loop never blocks on disk. The thread practises group commit: every
operation queued while a transaction is being committed goes into the next
transaction, and all of them are committed with a single fsync
(``synchronous=FULL``). The operations run back to back; should one fail,
the transaction is rolled back and run again with a SAVEPOINT per
operation, so the failing one is rolled back alone. A caller is answered
only after the COMMIT that holds its work has returned, so an ``accept``
that returned is on disk (SPEC §2: a 250 means committed and fsynced). When
the commit fails (disk full, database locked past ``busy_timeout``, I/O
error) every operation of the transaction raises
:class:`~mailbridge.errors.StorageError` and nothing of it is written.

Writers in several processes (``[smtp] workers``, ``mailbridge queue``) take
an advisory ``flock`` on ``<db>-lock`` around each write transaction, polled
finely and given up after ``busy_timeout`` (see ``_Writer._lock``).

Nothing is cached per row in Python: claiming reads two partial indexes
(scheduled rows by due time, sending rows by lease end).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

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

__all__ = ["MIGRATIONS", "QUERIES", "SqliteStorage", "WriterStats", "load_sql_blocks"]

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]

_BLOCK_RE = re.compile(r"^-- ([a-z0-9_ ]+) --$", re.MULTILINE)


def load_sql_blocks(text: str) -> dict[str, str]:
    """Named blocks of a ``.sql`` file: ``-- name --``, comment lines, then the SQL."""
    blocks: dict[str, str] = {}
    marks = list(_BLOCK_RE.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : following.start() if following else len(text)]
        lines = body.strip().splitlines()
        while lines and lines[0].startswith("--"):
            lines.pop(0)
        blocks[mark.group(1)] = "\n".join(lines).strip()
    return blocks


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


def _read_sql(name: str) -> str:
    return resources.files("mailbridge.storage").joinpath(name).read_text(encoding="utf-8")


#: The named queries of ``sqlite_queries.sql``.
QUERIES: dict[str, str] = load_sql_blocks(_read_sql("sqlite_queries.sql"))

#: The migrations of ``sqlite_schema.sql``, in order: migration n brings user_version to n.
MIGRATIONS: tuple[tuple[str, ...], ...] = tuple(
    tuple(_statements(sql))
    for _, sql in sorted(
        (int(name.split()[1]), sql)
        for name, sql in load_sql_blocks(_read_sql("sqlite_schema.sql")).items()
        if name.startswith("migration ")
    )
)

Q = QUERIES

#: Polling the writer lock: first pause and longest pause (seconds).
_LOCK_PAUSE_FIRST_S = 0.00002
_LOCK_PAUSE_MAX_S = 0.00025

_log = get_logger("mailbridge.storage.sqlite")


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterStats:
    """How the writer thread grouped its work: ``operations`` in ``transactions``."""

    transactions: int
    operations: int


@dataclass(slots=True, kw_only=True)
class _Op:
    work: Callable[[sqlite3.Connection], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():  # the caller gave up waiting; the work stands
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _storage_error(exc: sqlite3.Error) -> StorageError:
    err = StorageError(f"sqlite: {exc}")
    err.__cause__ = exc
    return err


def _aborted(exc: BaseException) -> StorageError:
    """The error of each operation of a transaction that could not commit (a new one each)."""
    if isinstance(exc, sqlite3.Error):
        return _storage_error(exc)
    err = StorageError(f"sqlite: transaction aborted ({type(exc).__name__})")
    err.__cause__ = exc
    return err


#: Least seconds between two prunings of the flood and duplicate tables. Their
#: queries ignore rows outside the windows; pruning only keeps the tables small.
PRUNE_EVERY_S = 1.0


class _Connection(sqlite3.Connection):
    """The writer's connection; remembers when the limit tables were last pruned."""

    pruned_at: float | None = None


def _prune_now(c: sqlite3.Connection, now_ts: float) -> bool:
    """Whether to prune the limit tables in this transaction (at most every PRUNE_EVERY_S)."""
    if not isinstance(c, _Connection):  # a connection the writer did not open: always
        return True
    if c.pruned_at is not None and 0 <= now_ts - c.pruned_at < PRUNE_EVERY_S:
        return False
    c.pruned_at = now_ts
    return True


class _Writer:
    """The thread that owns the connection and commits operations in groups."""

    def __init__(self, path: str, *, busy_timeout_s: float, max_batch: int) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max(1, max_batch)
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailbridge-sqlite", daemon=True)
        self._connect_error: StorageError | None = None
        self._lock_fd: int | None = None
        self.transactions = 0
        self.operations = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: _Op) -> None:
        self._queue.put(op)

    def stop(self) -> None:
        self._queue.put(None)

    def join(self) -> None:
        self._thread.join()

    def _connect(self) -> sqlite3.Connection | None:
        try:
            if self._path != ":memory:" and not os.path.exists(self._path):
                # the database holds whole mails (command passwords included): owner only
                os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600))
            if self._path != ":memory:":
                self._lock_fd = os.open(self._path + "-lock", os.O_RDWR | os.O_CREAT, 0o600)
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=True,
                factory=_Connection,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            # SAVEPOINT journals in memory (measured: 38 µs → 8 µs an operation)
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as exc:
            self._connect_error = _storage_error(exc)
            return None
        except OSError as exc:
            self._connect_error = StorageError(
                f"sqlite: cannot create {self._path}: {exc.strerror}"
            )
            return None
        return conn

    def _run(self) -> None:
        conn = self._connect()
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            if conn is None:
                message = str(self._connect_error or "sqlite: not connected")
                self._deliver(batch, [(None, StorageError(message)) for _ in batch])
            else:
                self._deliver(batch, self._transaction(conn, batch))
        if conn is not None:
            conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Op]
    ) -> list[tuple[Any, BaseException | None]]:
        """Run ``batch`` in one transaction, a SAVEPOINT per operation; one COMMIT."""
        write = any(op.write for op in batch)
        if not write or self._lock_fd is None:
            return self._locked_transaction(conn, batch, write)
        if not self._lock():
            err = StorageError("sqlite: database is locked (writer lock)")
            return [(None, err) for _ in batch]
        try:
            return self._locked_transaction(conn, batch, write)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _lock(self) -> bool:
        """Take the writer lock (``<db>-lock``); False when ``busy_timeout_s`` ran out first.

        Several processes writing one file (``[smtp] workers``, ``mailbridge
        queue``) would otherwise meet in SQLite's busy handler, which retries
        after 1, 2, 5, … up to 100 ms: under load a waiting writer loses again
        and again (measured: p99 to 250 of 40–140 ms with two workers). This
        lock is polled every 20–250 µs instead (p99 ≈ 20 ms), and never
        blocks longer than ``busy_timeout_s``, so a writer that cannot get it
        fails its transaction (a ``451``) rather than hanging.
        """
        fd = self._lock_fd
        assert fd is not None
        deadline = time.monotonic() + self._busy_timeout_s
        pause = _LOCK_PAUSE_FIRST_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, _LOCK_PAUSE_MAX_S)
            else:
                return True

    def _locked_transaction(
        self, conn: sqlite3.Connection, batch: list[_Op], write: bool
    ) -> list[tuple[Any, BaseException | None]]:
        """Run ``batch`` in one transaction: optimistically, then one SAVEPOINT per operation.

        The operations first run back to back with no SAVEPOINT (a SAVEPOINT
        and its RELEASE cost about as much as a small intake). Should one of
        them fail while others share the transaction, everything is rolled
        back and the batch runs again, each write in its own SAVEPOINT, so the
        failing operation is rolled back alone and the others still commit.
        """
        results = self._run_batch(conn, batch, write, savepoints=False)
        if results is None:
            results = self._run_batch(conn, batch, write, savepoints=True)
        assert results is not None
        return results

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Op], write: bool, *, savepoints: bool
    ) -> list[tuple[Any, BaseException | None]] | None:
        """One transaction over ``batch``; None when an operation failed and ``savepoints``
        is off with others in the batch (rolled back: run it again with savepoints)."""
        alone = len(batch) == 1
        results: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            return [(None, _storage_error(exc)) for _ in batch]
        try:
            for op in batch:
                guarded = savepoints and op.write  # a read leaves nothing to roll back
                if guarded:
                    conn.execute("SAVEPOINT op")
                try:
                    value = op.work(conn)
                except Exception as exc:
                    if not conn.in_transaction:  # SQLite rolled the whole transaction back
                        raise
                    err = _storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
                    if guarded:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                    elif op.write:  # no savepoint to go back to
                        conn.execute("ROLLBACK")
                        if not alone:
                            return None
                        return [(None, err)]
                    results.append((None, err))
                else:
                    if guarded:
                        conn.execute("RELEASE op")
                    results.append((value, None))
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return [(None, _aborted(exc)) for _ in batch]
        self.transactions += 1
        self.operations += len(batch)
        return results

    def _deliver(self, batch: list[_Op], results: list[tuple[Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for op, (value, error) in zip(batch, results, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, value, error))
        for loop, items in by_loop.items():
            # a closed loop: nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)


class SqliteStorage:
    """The :class:`~mailbridge.storage.base.Storage` contract on one SQLite file.

    ``busy_timeout_s``: how long a transaction waits for a lock held by another
    process (``mailbridge queue …``) before failing with ``StorageError``.
    ``max_batch``: most operations per transaction (1 turns group commit off).
    """

    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 5.0, max_batch: int = 256
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max_batch
        self._writer: _Writer | None = None
        self._closed = False
        self._reply_callbacks: list[Callable[[], None]] = []
        self._reader: sqlite3.Connection | None = None  # queue_stats only
        self._reader_lock = threading.Lock()

    @property
    def stats(self) -> WriterStats:
        """Committed transactions and the operations they held, since open."""
        w = self._writer
        return WriterStats(
            transactions=w.transactions if w else 0, operations=w.operations if w else 0
        )

    async def _call(self, work: Work[T], *, write: bool = True) -> T:
        writer = self._writer
        if writer is None or self._closed:
            raise StorageError("storage is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        writer.submit(_Op(work=work, write=write, loop=loop, future=future))
        return await future

    async def open(self) -> None:
        """Start the writer thread, connect, and create or migrate the schema."""
        if self._writer is not None and not self._closed:
            return
        self._closed = False
        self._writer = _Writer(
            str(self.path), busy_timeout_s=self._busy_timeout_s, max_batch=self._max_batch
        )
        self._writer.start()
        try:
            await self._call(_migrate)
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

    # --- intake -----------------------------------------------------------------

    async def ip_blocked(self, ip: str, now: datetime, limits: LimitsSettings) -> bool:
        """Whether ``ip`` is inside an error block."""
        row = await self._call(
            lambda c: c.execute(Q["ip_block"], {"ip": ip}).fetchone(), write=False
        )
        return lim.ip_blocked(from_ts(row[0]) if row else None, now)

    async def record_blocked(self, ip: str, now: datetime) -> None:
        """Count a request refused with ERROR = 4."""
        await self._call(lambda c: c.execute(Q["record_blocked"], {"ip": ip}))

    async def accept(
        self, intake: Intake, *, limits: LimitsSettings, reply_rate_per_hour: int, now: datetime
    ) -> AcceptResult:
        """Commit one mail and everything derived from it (see the protocol)."""
        validate_intake(intake)
        return await self._call(
            partial(
                _accept,
                intake=intake,
                limits=limits,
                reply_rate_per_hour=reply_rate_per_hour,
                now=now,
            )
        )

    # --- delivery ---------------------------------------------------------------

    async def next_due(self) -> datetime | None:
        """Earliest time a row becomes claimable (an indexed MIN)."""
        value = await self._call(lambda c: c.execute(Q["next_due"]).fetchone()[0], write=False)
        return None if value is None else from_ts(value)

    async def claim_due(
        self, now: datetime, *, limit: int, lease_s: float, owner: str
    ) -> list[SmsJob]:
        """Move up to ``limit`` due rows to ``sending`` under a lease, oldest due first."""
        if limit <= 0:
            return []
        return await self._call(
            partial(_claim_due, now=to_ts(now), limit=limit, lease_s=lease_s, owner=owner)
        )

    async def mark_sent(
        self, sms_id: int, *, provider: str, provider_id: str, answer: str, now: datetime
    ) -> None:
        """The provider took the SMS (only a row in ``sending`` moves)."""

        def work(c: sqlite3.Connection) -> None:
            if c.execute(Q["sending_row"], {"id": sms_id}).fetchone() is None:
                return
            _attempt(c, sms_id, provider, "sent", answer, now)
            c.execute(
                Q["set_sent"], {"id": sms_id, "provider": provider, "provider_id": provider_id}
            )

        await self._call(work)

    async def mark_retry(
        self, sms_id: int, *, provider: str, due: datetime, answer: str, now: datetime
    ) -> None:
        """A transient failure: back to ``scheduled`` at ``due``, attempt recorded."""
        due_ts = to_ts(due)

        def work(c: sqlite3.Connection) -> None:
            if c.execute(Q["sending_row"], {"id": sms_id}).fetchone() is None:
                return
            _attempt(c, sms_id, provider, "temporary", answer, now)
            c.execute(
                Q["set_retry"],
                {"id": sms_id, "due": due_ts, "provider": provider, "error": shorten(answer)},
            )

        await self._call(work)

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
        queued: bool = await self._call(
            partial(
                _mark_failed,
                sms_id=sms_id,
                provider=provider,
                state=state,
                answer=answer,
                now=now,
                reply_rate_per_hour=reply_rate_per_hour,
            )
        )
        if queued:
            self._fire_replies()

    def subscribe_replies(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever this storage queues a follow-up reply (``mark_failed``).

        The reply mailer passes its ``wake``, so a follow-up goes out at once.
        Replies queued by ``accept`` are announced by the SMTP handler itself.
        Returns a function that unsubscribes.
        """
        self._reply_callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._reply_callbacks.remove(callback)

        return unsubscribe

    def _fire_replies(self) -> None:
        for callback in list(self._reply_callbacks):
            try:
                callback()
            except Exception:
                _log.exception("wake-up callback failed")

    # --- replies ----------------------------------------------------------------

    async def next_reply_due(self) -> datetime | None:
        """Earliest time a reply becomes claimable."""
        value = await self._call(
            lambda c: c.execute(Q["next_reply_due"]).fetchone()[0], write=False
        )
        return None if value is None else from_ts(value)

    async def claim_replies(self, now: datetime, *, limit: int, lease_s: float) -> list[ReplyJob]:
        """Hand out up to ``limit`` due replies under a lease, oldest first."""
        if limit <= 0:
            return []
        now_ts = to_ts(now)

        def work(c: sqlite3.Connection) -> list[ReplyJob]:
            rows = c.execute(Q["claimable_replies"], {"now": now_ts, "limit": limit}).fetchall()
            c.executemany(Q["lease_reply"], [{"id": r[0], "until": now_ts + lease_s} for r in rows])
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
                for r in rows
            ]

        return await self._call(work)

    async def mark_reply_sent(self, reply_id: int, now: datetime) -> None:
        """The smarthost took the reply."""
        params = {"id": reply_id, "now": to_ts(now)}
        await self._call(lambda c: c.execute(Q["set_reply_sent"], params))

    async def mark_reply_retry(
        self, reply_id: int, *, due: datetime, error: str, now: datetime
    ) -> None:
        """The smarthost failed: queued again at ``due``."""
        params = {"id": reply_id, "due": to_ts(due), "error": shorten(error)}
        await self._call(lambda c: c.execute(Q["set_reply_retry"], params))

    # --- operators --------------------------------------------------------------

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

        def work(c: sqlite3.Connection) -> list[RequestSummary]:
            return [_summary(c, row) for row in c.execute(Q["list_requests"], params).fetchall()]

        return await self._call(work, write=False)

    async def show_request(self, request_id: str) -> RequestDetail | None:
        """The newest request with ``request_id``, with its rows and attempts."""
        return await self._call(partial(_show_request, request_id=request_id), write=False)

    async def queue_stats(self, now: datetime) -> QueueStats:
        """SMS rows by state, the oldest due one, replies waiting.

        Read on a connection of its own in a worker thread (WAL: readers never block the
        writer), not on the writer's: counting every row by state scans the per-request
        index (≈ 90 ms over 200 000 rows, measured), which would hold up commits.
        """
        if self._writer is None or self._closed:
            raise StorageError("storage is not open")
        if str(self.path) == ":memory:":  # nothing another connection could see
            return await self._call(partial(_queue_stats, now_ts=to_ts(now)), write=False)
        return await asyncio.to_thread(self._read_stats, to_ts(now))

    def _read_stats(self, now_ts: float) -> QueueStats:
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
                    return _queue_stats(self._reader, now_ts=now_ts)
                finally:
                    self._reader.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _storage_error(exc) from exc

    async def retry_request(self, request_id: str, now: datetime) -> int:
        """Failed/expired/cancelled rows back to ``scheduled`` now (charged again)."""
        now_ts = to_ts(now)

        def work(c: sqlite3.Connection) -> int:
            req = c.execute(Q["newest_request"], {"request_id": request_id}).fetchone()
            if req is None:
                return 0
            rows = c.execute(Q["retryable_rows"], {"pk": req[0]}).fetchall()
            c.executemany(Q["reschedule"], [{"id": r[0], "now": now_ts} for r in rows])
            if req[12] and req[2] is not None:
                c.execute(Q["charge"], {"account": req[2], "parts": sum(r[1] for r in rows)})
            return len(rows)

        return await self._call(work)

    async def cancel_request(self, request_id: str, now: datetime) -> int:
        """Cancel the scheduled rows of the request, refunding their parts."""

        def work(c: sqlite3.Connection) -> int:
            req = c.execute(Q["newest_request"], {"request_id": request_id}).fetchone()
            if req is None:
                return 0
            rows = c.execute(Q["scheduled_rows"], {"pk": req[0]}).fetchall()
            c.executemany(Q["cancel_row"], [{"id": r[0]} for r in rows])
            if req[12] and req[2] is not None:
                c.execute(Q["charge"], {"account": req[2], "parts": -sum(r[1] for r in rows)})
            return len(rows)

        return await self._call(work)


# --- the work of each operation, run on the writer thread ----------------------------


def _migrate(c: sqlite3.Connection) -> None:
    version = c.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StorageError(
            f"the database schema (version {version}) is newer than this program knows"
        )
    for number, statements in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        for statement in statements:
            c.execute(statement)
        c.execute(f"PRAGMA user_version = {number}")


def _accept(
    c: sqlite3.Connection,
    *,
    intake: Intake,
    limits: LimitsSettings,
    reply_rate_per_hour: int,
    now: datetime,
) -> AcceptResult:
    now_ts = to_ts(now)
    request = intake.request
    fingerprint = effective_fingerprint(intake)
    dup_since = to_ts(lim.since(now, limits.duplicate_window_s))
    ip_since = to_ts(lim.since(now, limits.error_block_window_s))
    flood: dict[str, lim.FloodState] = {}
    for number in dict.fromkeys(request.recipients if request else ()):
        row = c.execute(Q["flood_state"], {"number": number}).fetchone()
        if row is not None:
            flood[number] = lim.FloodState(last_at=from_ts(row[0]), streak=row[1])
    # The charge only matters against a balance; the reply count and the IP's
    # errors only when the plan queues a reply or counts an error: read those
    # when needed (a second, identical plan), not for every accepted mail.
    charged = (
        c.execute(Q["charged"], {"account": intake.account}).fetchone()
        if intake.balance is not None
        else None
    )
    duplicates = (
        c.execute(
            Q["count_duplicates"], {"fingerprint": fingerprint, "since": dup_since, "now": now_ts}
        ).fetchone()[0]
        if fingerprint is not None
        else 0
    )
    snapshot = IntakeSnapshot(
        duplicates=duplicates, flood=flood, charged=charged[0] if charged else 0
    )
    plan = plan_intake(
        intake, snapshot, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
    )
    reply_candidate = intake.reply is not None and (plan.error is not None or intake.test == 1)
    if plan.ip_error or reply_candidate:
        replies = (
            c.execute(
                Q["count_replies"],
                {
                    "recipient": intake.reply.to,
                    "since": to_ts(now - lim.REPLY_RATE_WINDOW),
                    "now": now_ts,
                },
            ).fetchone()[0]
            if intake.reply is not None and reply_candidate
            else 0
        )
        ip_errors = (
            tuple(
                from_ts(r[0])
                for r in c.execute(
                    Q["ip_errors"], {"ip": intake.client_ip, "since": ip_since, "now": now_ts}
                )
            )
            if plan.ip_error
            else ()
        )
        snapshot = IntakeSnapshot(
            duplicates=duplicates,
            flood=flood,
            charged=snapshot.charged,
            replies_last_hour=replies,
            ip_errors=ip_errors,
        )
        plan = plan_intake(
            intake, snapshot, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
        )
    reply = intake.reply
    pk: int = c.execute(Q["next_request_pk"]).fetchone()[0]
    request_id = intake.client_id or str(pk)
    line = result_line(plan.error, plan.sms_count, request_id)
    c.execute(
        Q["insert_request"],
        {
            "pk": pk,
            "request_id": request_id,
            "result": line,
            "account": intake.account,
            "client_ip": intake.client_ip,
            "mail_from": intake.mail_from,
            "rcpt_to": json.dumps(list(intake.rcpt_to)),
            "mode": intake.mode,
            "received_at": to_ts(intake.received_at),
            "error": plan.error,
            "error_detail": intake.error_detail,
            "test": intake.test,
            "sender": request.sender if request else None,
            "format": int(request.format) if request else None,
            "translit": request.translit if request else None,
            "due": to_ts(request.due) if request else None,
            "sms_total": plan.sms_count,
            "charged": 1 if plan.charge else 0,
            "reply_to": reply.to if reply else None,
            "reply_subject": reply.subject if reply else None,
            "reply_in_reply_to": reply.in_reply_to if reply else None,
            "reply_references": reply.references if reply else None,
        },
    )
    c.execute(Q["insert_mail"], {"request_pk": pk, "raw": intake.raw})
    if request is not None and plan.error is None:
        due = to_ts(request.due)
        c.executemany(
            Q["insert_sms"],
            [
                {
                    "request_pk": pk,
                    "recipient": d.recipient,
                    "text": d.text,
                    "sender": request.sender,
                    "format": int(request.format),
                    "encoding": d.encoding.value,
                    "parts": d.parts,
                    "due": due,
                    "subject": request.subject,
                    "voice": request.voice,
                    "param": request.param,
                }
                for d in sms_drafts(request)
            ],
        )
    c.executemany(
        Q["save_flood"],
        [
            {"number": n, "last_at": to_ts(s.last_at), "streak": s.streak}
            for n, s in plan.flood.items()
        ],
    )
    if _prune_now(c, now_ts):
        c.execute(Q["prune_flood"], {"before": to_ts(lim.since(now, limits.flood_gap_s))})
        c.execute(Q["prune_duplicates"], {"before": dup_since})
    if plan.duplicate is not None:
        c.execute(Q["insert_duplicate"], {"fingerprint": plan.duplicate, "at": now_ts})
    if plan.charge and intake.account is not None:
        c.execute(Q["charge"], {"account": intake.account, "parts": plan.charge})
    if plan.ip_error:
        c.execute(Q["prune_ip_errors"], {"before": ip_since})
        c.execute(Q["insert_ip_error"], {"ip": intake.client_ip, "at": now_ts})
    if plan.block_until is not None:
        c.execute(Q["prune_ip_blocks"], {"now": now_ts})
        c.execute(Q["save_ip_block"], {"ip": intake.client_ip, "until": to_ts(plan.block_until)})
    if plan.queue_reply and reply is not None:
        c.execute(
            Q["insert_reply"],
            {
                "request_pk": pk,
                "recipient": reply.to,
                "subject": reply.subject,
                "in_reply_to": reply.in_reply_to,
                "refs": reply.references,
                "body": line,
                "now": now_ts,
            },
        )
    return AcceptResult(
        request_id=request_id,
        error=plan.error,
        sms_count=plan.sms_count,
        line=line,
        reply_queued=plan.queue_reply,
    )


def _claim_due(
    c: sqlite3.Connection, *, now: float, limit: int, lease_s: float, owner: str
) -> list[SmsJob]:
    rows = c.execute(Q["claimable"], {"now": now, "limit": limit}).fetchall()
    c.executemany(
        Q["lease_sms"], [{"id": r[0], "owner": owner, "until": now + lease_s} for r in rows]
    )
    return [
        SmsJob(
            sms_id=r[0],
            request_id=r[1],
            account=r[2] or "",
            recipient=r[3],
            text=r[4],
            sender=r[5],
            format=Format(r[6]),
            encoding=Encoding(r[7]),
            parts=r[8],
            due=from_ts(r[9]),
            first_due=from_ts(r[10]),
            attempts=r[11],
            subject=r[12],
            voice=r[13],
            param=r[14],
            last_provider=r[15],
        )
        for r in rows
    ]


def _attempt(
    c: sqlite3.Connection, sms_id: int, provider: str, outcome: str, answer: str, now: datetime
) -> None:
    c.execute(
        Q["insert_attempt"],
        {
            "sms_id": sms_id,
            "at": to_ts(now),
            "provider": provider,
            "outcome": outcome,
            "answer": shorten(answer),
        },
    )


def _mark_failed(
    c: sqlite3.Connection,
    *,
    sms_id: int,
    provider: str | None,
    state: SmsState,
    answer: str,
    now: datetime,
    reply_rate_per_hour: int,
) -> bool:
    """The work of ``mark_failed``; True when the follow-up reply was queued."""
    row = c.execute(Q["sending_row"], {"id": sms_id}).fetchone()
    if row is None:
        return False
    (_, parts, pk, request_id, account, charged, error, test, followup_sent, *reply) = row
    if provider is not None:
        _attempt(c, sms_id, provider, failure_outcome(state), answer, now)
    c.execute(
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
        c.execute(Q["charge"], {"account": account, "parts": -parts})
    reply_to, subject, in_reply_to, references = reply
    if error is not None or test != 1 or followup_sent or reply_to is None:
        return False
    sent = c.execute(
        Q["count_replies"],
        {
            "recipient": reply_to,
            "since": to_ts(now - lim.REPLY_RATE_WINDOW),
            "now": to_ts(now),
        },
    ).fetchone()[0]
    if not lim.reply_allowed(sent, reply_rate_per_hour):
        return False
    c.execute(Q["set_followup_sent"], {"pk": pk})
    c.execute(
        Q["insert_reply"],
        {
            "request_pk": pk,
            "recipient": reply_to,
            "subject": subject,
            "in_reply_to": in_reply_to,
            "refs": references,
            "body": error_line(FOLLOWUP_ERROR, request_id),
            "now": to_ts(now),
        },
    )
    return True


def _summary(c: sqlite3.Connection, row: Sequence[Any]) -> RequestSummary:
    pk, request_id, account, received_at, mode, result, sms_total = row[:7]
    states: dict[str, int] = dict(c.execute(Q["request_states"], {"pk": pk}).fetchall())
    return RequestSummary(
        request_id=request_id,
        account=account,
        received_at=from_ts(received_at),
        mode=mode,
        result=result,
        sms_total=sms_total,
        states=states,
    )


def _show_request(c: sqlite3.Connection, *, request_id: str) -> RequestDetail | None:
    req = c.execute(Q["newest_request"], {"request_id": request_id}).fetchone()
    if req is None:
        return None
    pk = req[0]
    attempts: dict[int, list[Attempt]] = {}
    for sms_id, at, provider, outcome, answer in c.execute(Q["request_attempts"], {"pk": pk}):
        attempts.setdefault(sms_id, []).append(
            Attempt(at=from_ts(at), provider=provider, outcome=outcome, answer=answer)
        )
    sms = tuple(
        SmsView(
            sms_id=r[0],
            recipient=r[1],
            state=SmsState(r[2]),
            parts=r[3],
            due=from_ts(r[4]),
            provider=r[5],
            provider_id=r[6],
            attempts=tuple(attempts.get(r[0], ())),
            error=r[7],
        )
        for r in c.execute(Q["request_sms"], {"pk": pk}).fetchall()
    )
    replies = tuple(
        ReplyView(
            reply_id=r[0],
            to=r[1],
            state=r[2],
            attempts=r[3],
            body=r[4],
            due=from_ts(r[5]),
            sent_at=None if r[6] is None else from_ts(r[6]),
        )
        for r in c.execute(Q["request_replies"], {"pk": pk}).fetchall()
    )
    return RequestDetail(
        summary=_summary(c, req),
        client_ip=req[7],
        mail_from=req[8],
        sender=req[9],
        format=req[10],
        due=None if req[11] is None else from_ts(req[11]),
        sms=sms,
        replies=replies,
    )


def _queue_stats(c: sqlite3.Connection, *, now_ts: float) -> QueueStats:
    by_state = {str(state): int(n) for state, n in c.execute(Q["queue_states"]).fetchall()}
    oldest = c.execute(Q["oldest_due"], {"now": now_ts}).fetchone()[0]
    waiting = c.execute(Q["replies_waiting"]).fetchone()[0]
    return QueueStats(
        by_state=by_state,
        oldest_due=None if oldest is None else from_ts(oldest),
        replies_waiting=int(waiting),
    )
