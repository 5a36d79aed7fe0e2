"""The SQLite writer thread: one connection, operations committed in groups.

All database work of a :class:`~mailbridge.storage.sqlite.SqliteConnector`
runs on ONE thread (:class:`Writer`) that owns the connection, so the event
loop never blocks on disk. The thread practises group commit: every
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
finely and given up after ``busy_timeout`` (see ``Writer._lock``). Before each
write transaction one ``stat`` checks that the file at the path is still the
one opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailbridge.errors import StorageError
from mailbridge.log import get_logger
from mailbridge.observe import Observer

__all__ = [
    "PRUNE_EVERY_S",
    "Op",
    "Writer",
    "WriterStats",
    "prune_now",
    "storage_error",
]

#: Polling the writer lock: first pause and longest pause (seconds).
_LOCK_PAUSE_FIRST_S = 0.00002
_LOCK_PAUSE_MAX_S = 0.00025

# the lines keep the logger name of the connector module they came from
_log = get_logger("mailbridge.storage.sqlite")


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterStats:
    """How the writer thread grouped its work: ``operations`` in ``transactions``."""

    transactions: int
    operations: int


@dataclass(slots=True, kw_only=True)
class Op:
    work: Callable[[sqlite3.Connection], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    bare: bool = False  # run alone, outside any transaction (checkpoint)


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():  # the caller gave up waiting; the work stands
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def storage_error(exc: sqlite3.Error) -> StorageError:
    err = StorageError(f"sqlite: {exc}")
    err.__cause__ = exc
    return err


def _aborted(exc: BaseException) -> StorageError:
    """The error of each operation of a transaction that could not commit (a new one each)."""
    if isinstance(exc, sqlite3.Error):
        return storage_error(exc)
    err = StorageError(f"sqlite: transaction aborted ({type(exc).__name__})")
    err.__cause__ = exc
    return err


#: Least seconds between two prunings of the flood and duplicate tables. Their
#: queries ignore rows outside the windows; pruning only keeps the tables small.
PRUNE_EVERY_S = 1.0


class _Connection(sqlite3.Connection):
    """The writer's connection; remembers when the limit tables were last pruned."""

    pruned_at: float | None = None


def prune_now(c: sqlite3.Connection, now_ts: float) -> bool:
    """Whether to prune the limit tables in this transaction (at most every PRUNE_EVERY_S)."""
    if not isinstance(c, _Connection):  # a connection the writer did not open: always
        return True
    if c.pruned_at is not None and 0 <= now_ts - c.pruned_at < PRUNE_EVERY_S:
        return False
    c.pruned_at = now_ts
    return True


class Writer:
    """The thread that owns the connection and commits operations in groups."""

    def __init__(
        self, path: str, *, busy_timeout_s: float, max_batch: int, observer: Observer
    ) -> None:
        self._path = path
        self._observer = observer
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max(1, max_batch)
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailbridge-sqlite", daemon=True)
        self._connect_error: StorageError | None = None
        self._lock_fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._gone_logged = 0.0
        self.transactions = 0
        self.operations = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: Op) -> None:
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
            _incremental_vacuum(conn, self._path)
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            # SAVEPOINT journals in memory (measured: 38 µs → 8 µs an operation)
            conn.execute("PRAGMA temp_store = MEMORY")
            if self._path != ":memory:":
                st = os.stat(self._path)
                self._identity = (st.st_dev, st.st_ino)
        except sqlite3.Error as exc:
            self._connect_error = storage_error(exc)
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
        held: Op | None = None  # a bare operation met while filling a batch: next alone
        while not stopping:
            first = held if held is not None else self._queue.get()
            held = None
            if first is None:
                break
            if first.bare:
                self._deliver([first], self._bare(conn, first))
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                if nxt.bare:
                    held = nxt
                    break
                batch.append(nxt)
            # a caller that gave up before its work began (its session closed): not run;
            # whether any operation writes, in the same pass (no comprehensions: one op
            # a transaction is the common case)
            write = False
            for op in batch:
                if op.future.cancelled():
                    batch = [op for op in batch if not op.future.cancelled()]
                    write = any(op.write for op in batch)
                    break
                if op.write:
                    write = True
            if not batch:
                continue
            if conn is None:
                message = str(self._connect_error or "sqlite: not connected")
                self._deliver(batch, [(None, StorageError(message)) for _ in batch])
            else:
                started = time.perf_counter()
                results = self._transaction(conn, batch, write)
                if write:
                    self._observer.commit(time.perf_counter() - started)
                self._deliver(batch, results)
        if conn is not None:
            conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[Op], write: bool
    ) -> list[tuple[Any, BaseException | None]]:
        """Run ``batch`` in one transaction, a SAVEPOINT per operation; one COMMIT
        (``write``: whether any operation of it writes)."""
        if write and (gone := self._file_gone()) is not None:
            return [(None, gone) for _ in batch]
        if not write or self._lock_fd is None:
            return self._locked_transaction(conn, batch, write)
        if not self._lock():
            err = StorageError("sqlite: database is locked (writer lock)")
            return [(None, err) for _ in batch]
        try:
            return self._locked_transaction(conn, batch, write)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _file_gone(self) -> StorageError | None:
        """An error when the file at the path is no longer the one opened, else None.

        A database whose folder was removed (``rm -rf``) or whose file was
        replaced still takes commits into the deleted inode, and a 250 would
        then be a lost mail. One ``stat`` per write transaction (2.9 µs measured)
        tells: the commit fails (a ``451``) and an error line says why, at most
        every 10 s.
        """
        if self._identity is None:
            return None
        try:
            st = os.stat(self._path)
            same = (st.st_dev, st.st_ino) == self._identity
        except OSError:
            same = False
        if same:
            return None
        now = time.monotonic()
        if now - self._gone_logged >= 10.0:
            self._gone_logged = now
            _log.error(
                "database file gone",
                path=self._path,
                detail="the file at the configured path is not the one opened "
                "(removed or replaced); every mail gets 451 until it is restored "
                "and mailbridge restarted",
            )
        return StorageError(f"sqlite: the database file {self._path} is gone or replaced")

    def _bare(
        self, conn: sqlite3.Connection | None, op: Op
    ) -> list[tuple[Any, BaseException | None]]:
        """Run ``op`` alone, outside any transaction (under the writer lock)."""
        if conn is None:
            return [(None, StorageError(str(self._connect_error or "sqlite: not connected")))]
        if self._lock_fd is not None and not self._lock():
            return [(None, StorageError("sqlite: database is locked (writer lock)"))]
        try:
            return [(op.work(conn), None)]
        except sqlite3.Error as exc:
            return [(None, storage_error(exc))]
        except Exception as exc:
            return [(None, exc)]
        finally:
            if self._lock_fd is not None:
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
        self, conn: sqlite3.Connection, batch: list[Op], write: bool
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
        self, conn: sqlite3.Connection, batch: list[Op], write: bool, *, savepoints: bool
    ) -> list[tuple[Any, BaseException | None]] | None:
        """One transaction over ``batch``; None when an operation failed and ``savepoints``
        is off with others in the batch (rolled back: run it again with savepoints)."""
        alone = len(batch) == 1
        results: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            return [(None, storage_error(exc)) for _ in batch]
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
                    err = storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
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

    def _deliver(self, batch: list[Op], results: list[tuple[Any, BaseException | None]]) -> None:
        if len(batch) == 1:  # the common case: one call into its loop, no grouping
            op = batch[0]
            value, error = results[0]
            # a closed loop: nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                op.loop.call_soon_threadsafe(_settle, [(op.future, value, error)])
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for op, (value, error) in zip(batch, results, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, value, error))
        for loop, items in by_loop.items():
            # a closed loop: nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)


def _incremental_vacuum(c: sqlite3.Connection, path: str) -> None:
    """``auto_vacuum = INCREMENTAL``, so that retention can give space back.

    A new database gets it before its first table; an older one is rebuilt
    once with ``VACUUM`` (logged: it takes about a second per few hundred MB);
    while another process holds the database (``mailbridge queue`` beside a
    running daemon) that is put off to a later start.
    """
    if c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return
    c.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        _log.warning("sqlite_vacuum", path=path, reason="switching to incremental auto_vacuum")
        try:
            c.execute("VACUUM")
        except sqlite3.OperationalError as exc:  # another process writes: next start
            _log.warning("sqlite_vacuum_postponed", path=path, error=str(exc))
