"""The named queries of retention for the memory backend.

One Python function per query of ``sqlite_queries.sql`` / ``postgres_queries.sql``
of the same name, over :class:`~mailbridge.storage.memory_tables.Tables`: what
:mod:`mailbridge.storage.retention` runs (the cut by request number, the
requests that may go, and the deletion of what hangs off them; old SMS from
phones and their parts).
"""

from __future__ import annotations

from collections.abc import Callable

from mailbridge.models import InboundState, ReplyState, SmsState
from mailbridge.storage.connector import Params, Row
from mailbridge.storage.memory_tables import Queries, Query, Tables, delete_where

__all__ = ["QUERIES"]

QUERIES = Queries()

_UNFINISHED = frozenset({SmsState.SCHEDULED.value, SmsState.SENDING.value})
_WAITING = frozenset({ReplyState.QUEUED.value, ReplyState.SENDING.value})
_INBOUND_DONE = frozenset({InboundState.SENT.value, InboundState.KEPT.value})


@QUERIES.add
def _retention_cutoff(db: Tables, p: Params) -> list[Row]:
    old = [pk for pk, r in db.requests.items() if r["received_at"] < p["before"]]
    return [(max(old, default=None),)]


@QUERIES.add
def _old_raw_mails(db: Tables, p: Params) -> list[Row]:
    rows: list[Row] = [(pk,) for pk in sorted(db.mails) if pk <= p["cutoff"]]
    return rows[: p["limit"]]


@QUERIES.add
def _finished_requests(db: Tables, p: Params) -> list[Row]:
    busy = {s["request_pk"] for s in db.sms.values() if s["state"] in _UNFINISHED}
    busy |= {r["request_pk"] for r in db.replies.values() if r["state"] in _WAITING}
    pks = sorted(pk for pk in db.requests if pk <= p["cutoff"] and pk not in busy)
    return [(pk,) for pk in pks[: p["limit"]]]


def _pks(db: Tables, p: Params) -> set[int]:
    return set(p["pks"])


def _ids(db: Tables, p: Params) -> set[int]:
    return set(p["ids"])


def _sms_of(db: Tables, p: Params) -> set[int]:
    """The ids of the SMS rows of the requests ``pks``."""
    pks = _pks(db, p)
    return {i for i, s in db.sms.items() if s["request_pk"] in pks}


def _deleting(table: str, column: str, of: Callable[[Tables, Params], set[int]]) -> Query:
    """The query deleting the rows of ``table`` whose ``column`` is one of the keys ``of``
    gives (``DELETE … WHERE column IN (…)``)."""

    def query(db: Tables, p: Params) -> list[Row]:
        return delete_where(getattr(db, table), column, of(db, p))

    return query


for _name, _table, _column, _of in (
    ("delete_attempts_of", "attempts", "sms_id", _sms_of),
    ("delete_parts_of", "sms_parts", "sms_id", _sms_of),
    ("delete_sms_of", "sms", "request_pk", _pks),
    ("delete_replies_of", "replies", "request_pk", _pks),
    ("delete_requests", "requests", "pk", _pks),
    ("delete_inbound_parts_of", "inbound_parts", "inbound_id", _ids),
    ("delete_inbound", "inbound", "id", _ids),
):
    QUERIES.put(_name, _deleting(_table, _column, _of))


@QUERIES.add
def _delete_mails_of(db: Tables, p: Params) -> list[Row]:
    for pk in p["pks"]:
        db.mails.pop(pk, None)
    return []


@QUERIES.add
def _detach_inbound_of(db: Tables, p: Params) -> list[Row]:
    pks = _pks(db, p)
    for row in db.inbound.values():
        if row.get("request_pk") in pks:
            row["request_pk"] = None
    return []


@QUERIES.add
def _old_inbound(db: Tables, p: Params) -> list[Row]:
    done = sorted(
        i
        for i, row in db.inbound.items()
        if row["state"] in _INBOUND_DONE and row["stored_at"] < p["before"]
    )
    return [(i,) for i in done[: p["limit"]]]
