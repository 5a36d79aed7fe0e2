"""What a storage backend must do: run named queries in a transaction, and wake others.

The rules (what an intake writes, the follow-up reply, state changes, row
mapping) live once in :mod:`mailbridge.storage.domain`. A backend is a
:class:`Connector`: it runs a piece of domain work in one transaction and
hands it a :class:`Tx`, through which the work runs the backend's *named
queries* (``<dialect>_queries.sql``; the in-memory backend has a Python
function per name). A query takes named parameters (times as aware
``datetime``, lists as lists) and gives rows as tuples; times in rows are
the dialect's own and go back through :meth:`Tx.moment`.

Adding a storage operation: one method in the domain, one named query per
dialect (and one function in :mod:`mailbridge.storage.memory`).
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from importlib import resources
from typing import Any, Protocol, TypeVar

from mailbridge.errors import StorageError
from mailbridge.log import get_logger
from mailbridge.observe import Observer
from mailbridge.settings import LimitsSettings
from mailbridge.storage.base import Callback, Unsubscribe

__all__ = [
    "Channel",
    "Connector",
    "LocalWakeups",
    "Params",
    "Row",
    "Subscribers",
    "Tx",
    "load_sql_blocks",
    "migrations",
    "named_queries",
    "pending",
    "read_sql",
]

T = TypeVar("T")
#: The parameters of a named query.
Params = Mapping[str, Any]
#: One row a named query gives.
Row = Sequence[Any]

_log = get_logger("mailbridge.storage")


class Channel(enum.StrEnum):
    """What a wake-up is about (also the PostgreSQL NOTIFY channel)."""

    DUE = "mailbridge_due"  # SMS rows became due
    REPLIES = "mailbridge_reply"  # a reply mail was queued


class Tx(Protocol):
    """One transaction of a backend, as domain work sees it."""

    async def one(self, name: str, params: Params) -> Row | None:
        """The first row of query ``name`` (None: no row)."""
        ...

    async def all(self, name: str, params: Params) -> list[Row]:
        """Every row of query ``name``."""
        ...

    async def run(self, name: str, params: Params) -> None:
        """Run query ``name`` for its effect (a dialect may leave a query empty: nothing)."""
        ...

    async def run_many(self, name: str, rows: Sequence[Params]) -> None:
        """Run query ``name`` once for each parameter set."""
        ...

    async def claim(self, name: str, params: Params) -> list[Row]:
        """Lease the rows query ``name`` picks (``now``, ``limit``, ``until``…) and give
        them: each row to one claimer, even across processes."""
        ...

    async def lock(self, keys: Iterable[tuple[str, str]]) -> None:
        """Hold the (kind, value) keys until the transaction ends, taken in a fixed
        order (no-op where one writer does all the writing)."""
        ...

    def pipeline(self) -> AbstractAsyncContextManager[None]:
        """Writes whose results nobody reads may be sent together inside this."""
        ...

    def prune_due(self, now: datetime) -> bool:
        """Whether the limit tables are pruned inside this intake (``prune_flood``,
        ``prune_duplicates``); False where the backend sweeps them otherwise."""
        ...

    def moment(self, value: Any) -> datetime:
        """A time read from a row, as an aware ``datetime``."""
        ...


class Connector(Protocol):
    """A backend: transactions, wake-ups, housekeeping."""

    #: Told how long each (write) transaction took, commit included (set before ``open``).
    observer: Observer

    async def open(self) -> None:
        """Connect, create or migrate the schema."""
        ...

    async def close(self) -> None: ...

    async def transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool = True) -> T:
        """Run ``work`` in one transaction; its result once committed. Raises
        ``StorageError`` when it cannot commit (nothing of it is written)."""
        ...

    async def snapshot(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run read-only ``work`` off the write path where the backend can (SQLite: a
        read-only connection of its own); elsewhere a ``transaction(write=False)``."""
        ...

    def notify(self, channel: Channel, *, here: bool) -> None:
        """After a commit: tell the other processes sharing the database that
        ``channel`` has work, and with ``here`` this process's subscribers too."""
        ...

    def subscribe(self, channel: Channel, callback: Callback) -> Unsubscribe: ...

    def after_intake(self, limits: LimitsSettings, now: datetime) -> None:
        """An intake has committed (room for housekeeping)."""
        ...

    async def compact(self) -> None:
        """Give the space of deleted rows back to the file system (retention)."""
        ...


class Subscribers:
    """The callbacks of one process, by channel."""

    def __init__(self) -> None:
        self._by_channel: dict[Channel, list[Callback]] = {c: [] for c in Channel}

    def __bool__(self) -> bool:
        return any(self._by_channel.values())

    def add(self, channel: Channel, callback: Callback) -> Unsubscribe:
        callbacks = self._by_channel[channel]
        callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)

        return unsubscribe

    def fire(self, channel: Channel) -> None:
        for callback in list(self._by_channel[channel]):
            try:
                callback()
            except Exception:
                _log.exception("wake-up callback failed")


_BLOCK_RE = re.compile(r"^-- ([a-z0-9_ ]+) --$", re.MULTILINE)


def load_sql_blocks(text: str) -> dict[str, str]:
    """Named blocks of a ``.sql`` file: ``-- name --``, comment lines, then the SQL
    (nothing but comments: an empty query)."""
    blocks: dict[str, str] = {}
    marks = list(_BLOCK_RE.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : following.start() if following else len(text)]
        lines = body.strip().splitlines()
        while lines and lines[0].startswith("--"):
            lines.pop(0)
        blocks[mark.group(1)] = "\n".join(lines).strip()
    return blocks


def read_sql(name: str) -> str:
    """A ``.sql`` file shipped in this package."""
    return resources.files("mailbridge.storage").joinpath(name).read_text(encoding="utf-8")


def named_queries(name: str) -> dict[str, str]:
    """The named queries of the ``.sql`` file ``name`` of this package."""
    return load_sql_blocks(read_sql(name))


def migrations(name: str) -> list[str]:
    """The ``-- migration <n> --`` scripts of the schema file ``name``, in order."""
    return [
        sql
        for _, sql in sorted(
            (int(key.split()[1]), sql)
            for key, sql in named_queries(name).items()
            if key.startswith("migration ")
        )
    ]


def pending(version: int, known: int) -> range:
    """The numbers of the migrations a database at ``version`` still needs, of ``known``;
    ``StorageError`` when a newer program migrated it."""
    if version > known:
        raise StorageError(
            f"the database schema (version {version}) is newer than this program knows"
        )
    return range(version + 1, known + 1)


class LocalWakeups:
    """The wake-ups of a backend no other process listens to (SQLite, memory): only
    this process's subscribers hear them, and an intake leaves nothing to sweep."""

    def __init__(self) -> None:
        self._subscribers = Subscribers()

    def notify(self, channel: Channel, *, here: bool) -> None:
        """This process's subscribers, with ``here`` (the SMTP handler wakes the dispatcher
        and the mailer itself)."""
        if here:
            self._subscribers.fire(channel)

    def subscribe(self, channel: Channel, callback: Callback) -> Unsubscribe:
        return self._subscribers.add(channel, callback)

    def after_intake(self, limits: LimitsSettings, now: datetime) -> None:
        """Nothing to sweep."""

    async def compact(self) -> None:
        """Nothing to give back (memory); SQLite overrides it."""
