"""The tables of the memory backend, and the shapes its named queries share.

:class:`Tables` holds what the ``*_schema.sql`` files define, as dicts of rows
(each row a dict named like the SQL columns; times are ``datetime``).
:class:`Queries` is a set of named queries, a Python function per name of the
``<dialect>_queries.sql`` files: each ``memory_*`` module fills one for the
part of :class:`~mailbridge.storage.domain.Store` of its name, and
:mod:`mailbridge.storage.memory` runs them all. What several queries do alike
is here once: the claimable rows of a leased table and the earliest time one
becomes claimable, a row's lease let go, rows deleted by a column's values.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from mailbridge.models import SmsState
from mailbridge.storage.connector import Params, Row

__all__ = [
    "SENDING",
    "Queries",
    "Query",
    "Table",
    "Tables",
    "claimable",
    "delete_where",
    "min_time",
    "next_claimable",
    "set_flag",
    "unlease",
]

Table = dict[int, dict[str, Any]]

#: The state of a leased row, in each leased table (SMS, reply mails, inbound mails).
SENDING = SmsState.SENDING.value


@dataclass(slots=True)
class Tables:
    """The tables. Rows are dicts named like the SQL columns; times are ``datetime``."""

    requests: Table = field(default_factory=dict)
    mails: dict[int, bytes] = field(default_factory=dict)
    sms: Table = field(default_factory=dict)
    attempts: Table = field(default_factory=dict)
    replies: Table = field(default_factory=dict)
    duplicates: dict[str, list[datetime]] = field(default_factory=dict)
    flood: dict[str, tuple[datetime, int]] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    ip_errors: dict[str, list[datetime]] = field(default_factory=dict)
    ip_blocks: dict[str, list[Any]] = field(default_factory=dict)  # ip -> [until, refused]
    sms_parts: Table = field(default_factory=dict)
    receipts_kept: Table = field(default_factory=dict)
    inbound: Table = field(default_factory=dict)
    inbound_parts: Table = field(default_factory=dict)
    instances: dict[str, datetime] = field(default_factory=dict)  # owner -> last heartbeat
    next_request: int = 1

    def copy(self) -> Tables:
        """A copy to go back to: each table and each row copied (the values in a row are
        not changed in place, except the lists of times and of an IP's block, copied too)."""
        return Tables(**{f.name: _copy(getattr(self, f.name)) for f in fields(self)})

    def insert(self, table: Table, row: dict[str, Any]) -> int:
        key = max(table, default=0) + 1
        table[key] = {"id": key, **row}
        return key


def _copy(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: v.copy() if isinstance(v, dict | list) else v for k, v in value.items()}


Query = Callable[[Tables, Params], list[Row]]


class Queries(dict[str, Query]):
    """Named queries; :meth:`add` registers a function ``_name`` as ``name``."""

    def add(self, fn: Query) -> Query:
        self.put(fn.__name__.lstrip("_"), fn)
        return fn

    def put(self, name: str, fn: Query) -> None:
        """Register ``fn`` as ``name`` (a query made by a function for several tables)."""
        if name in self:
            raise ValueError(f"query {name} defined twice")
        self[name] = fn


def min_time(times: Iterable[datetime | None]) -> list[Row]:
    """The one-row answer of a ``MIN`` over times (None: no time)."""
    return [(min((t for t in times if t is not None), default=None),)]


def claimable(table: Table, now: datetime, waiting: str) -> list[dict[str, Any]]:
    """Rows due in state ``waiting``, or leased with the lease run out; oldest due first."""
    return sorted(
        (
            r
            for r in table.values()
            if (r["state"] == waiting and r["due"] <= now)
            or (r["state"] == SENDING and r["lease_until"] is not None and r["lease_until"] <= now)
        ),
        key=lambda r: (r["due"], r["id"]),
    )


def next_claimable(table: Table, waiting: str) -> list[Row]:
    """The earliest time a row of ``table`` becomes claimable (:func:`claimable`)."""
    return min_time(
        r["due"] if r["state"] == waiting else r["lease_until"]
        for r in table.values()
        if r["state"] in (waiting, SENDING)
    )


def unlease(row: dict[str, Any], **changes: Any) -> list[Row]:
    """Apply ``changes`` to a leased row and let its lease go."""
    row.update(changes, lease_until=None)
    if "lease_owner" in row:
        row["lease_owner"] = None
    return []


def set_flag(column: str) -> Query:
    """The query that sets the flag ``column`` of the request ``pk`` (a mail queued once)."""

    def query(db: Tables, p: Params) -> list[Row]:
        db.requests[p["pk"]][column] = True
        return []

    return query


def delete_where(table: Table, column: str, values: Collection[Any]) -> list[Row]:
    """Delete the rows of ``table`` whose ``column`` is one of ``values``."""
    for key in [k for k, r in table.items() if r[column] in values]:
        del table[key]
    return []
