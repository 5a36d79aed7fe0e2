"""The named queries of receipts and inbound SMS for :mod:`mailbridge.storage.memory`.

One Python function per query of ``sqlite_queries.sql`` /
``postgres_queries.sql`` of the same name, over the dict tables of the
memory backend (:class:`Tables`); :mod:`mailbridge.storage.memory` adds
:data:`QUERIES` to its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from mailbridge.models import InboundState, SmsState
from mailbridge.storage.connector import Params, Row

__all__ = ["QUERIES", "Tables"]

Table = dict[int, dict[str, Any]]


class Tables(Protocol):
    """The tables of the memory backend these queries read and write."""

    requests: Table
    sms: Table
    sms_parts: Table
    receipts_kept: Table
    inbound: Table
    inbound_parts: Table

    def insert(self, table: Table, row: dict[str, Any]) -> int: ...


_Db = Tables
Query = Callable[[Tables, Params], list[Row]]
QUERIES: dict[str, Query] = {}


def _query(fn: Query) -> Query:
    QUERIES[fn.__name__.lstrip("_")] = fn
    return fn


def _min(times: Iterable[datetime | None]) -> list[Row]:
    return [(min((t for t in times if t is not None), default=None),)]


_SENT = SmsState.SENT.value
_QUEUED, _SENDING, _MAILED = (
    InboundState.QUEUED.value,
    InboundState.SENDING.value,
    InboundState.SENT.value,
)
_KEY = ("provider", "source", "destination", "reference", "total")


@_query
def _sms_by_provider_id(db: _Db, p: Params) -> list[Row]:
    found = [
        s
        for s in db.sms.values()
        if s["provider"] == p["provider"] and s["provider_id"] == p["provider_id"]
    ]
    if not found:
        return []
    s = max(found, key=lambda s: s["id"])
    return [(s["id"], s["state"], s["request_pk"])]


@_query
def _sms_part_by_id(db: _Db, p: Params) -> list[Row]:
    found = [
        x
        for x in db.sms_parts.values()
        if x["provider"] == p["provider"] and x["provider_id"] == p["provider_id"]
    ]
    if not found:
        return []
    x = max(found, key=lambda x: x["id"])
    s = db.sms[x["sms_id"]]
    return [(x["id"], s["id"], s["state"], s["request_pk"])]


@_query
def _set_part_state(db: _Db, p: Params) -> list[Row]:
    x = db.sms_parts[p["id"]]
    if x["state"] is None:
        x["state"] = p["state"]
    return []


@_query
def _sms_part_states(db: _Db, p: Params) -> list[Row]:
    parts = sorted(
        (x for x in db.sms_parts.values() if x["sms_id"] == p["sms_id"]), key=lambda x: x["id"]
    )
    return [(x["state"],) for x in parts]


@_query
def _delete_sms_parts(db: _Db, p: Params) -> list[Row]:
    for key in [k for k, x in db.sms_parts.items() if x["sms_id"] == p["sms_id"]]:
        del db.sms_parts[key]
    return []


@_query
def _insert_sms_part(db: _Db, p: Params) -> list[Row]:
    db.insert(db.sms_parts, {**p, "state": None})
    return []


@_query
def _set_receipt(db: _Db, p: Params) -> list[Row]:
    db.sms[p["id"]].update(
        state=p["state"],
        receipt_status=p["status"],
        receipt_error=p["error_code"],
        receipt_at=p["at"],
    )
    return []


@_query
def _keep_receipt(db: _Db, p: Params) -> list[Row]:
    db.insert(db.receipts_kept, {**p, "received_at": p["now"]})
    return []


def _kept(db: _Db, p: Params) -> list[dict[str, Any]]:
    return sorted(
        (
            k
            for k in db.receipts_kept.values()
            if k["provider"] == p["provider"] and k["provider_id"] == p["provider_id"]
        ),
        key=lambda k: k["id"],
    )


@_query
def _kept_receipts(db: _Db, p: Params) -> list[Row]:
    return [(k["state"], k["status"], k["error_code"], k["at"]) for k in _kept(db, p)]


@_query
def _any_kept_receipt(db: _Db, p: Params) -> list[Row]:
    return [(1,)] if db.receipts_kept else []


@_query
def _drop_kept_receipts(db: _Db, p: Params) -> list[Row]:
    for k in _kept(db, p):
        del db.receipts_kept[k["id"]]
    return []


@_query
def _lock_request_undelivered(db: _Db, p: Params) -> list[Row]:
    r = db.requests.get(p["pk"])
    if r is None:
        return []
    return [
        (
            r.get("undelivered_sent", False),
            r["request_id"],
            r["error"],
            r["reply_to"],
            r["reply_subject"],
            r["reply_in_reply_to"],
            r["reply_references"],
        )
    ]


@_query
def _request_outcomes(db: _Db, p: Params) -> list[Row]:
    return [
        (
            s["recipient"],
            s["state"],
            s.get("receipt_status"),
            s.get("receipt_error"),
            s.get("receipt_at"),
        )
        for s in sorted(db.sms.values(), key=lambda s: s["id"])
        if s["request_pk"] == p["pk"]
    ]


@_query
def _set_undelivered_sent(db: _Db, p: Params) -> list[Row]:
    db.requests[p["pk"]]["undelivered_sent"] = True
    return []


@_query
def _status_candidates(db: _Db, p: Params) -> list[Row]:
    rows = [
        s
        for s in db.sms.values()
        if s["state"] == _SENT
        and s["provider"] == p["provider"]
        and s.get("provider_id") is not None
        and s.get("sent_at") is not None
        and s["sent_at"] >= p["sent_since"]
        and (s.get("status_checked_at") is None or s["status_checked_at"] <= p["asked_before"])
    ]
    rows.sort(key=lambda s: (s.get("status_checked_at") or s["sent_at"], s["id"]))
    return [(s["id"], s["recipient"], s["provider_id"], s["sent_at"]) for s in rows[: p["limit"]]]


@_query
def _set_status_checked(db: _Db, p: Params) -> list[Row]:
    db.sms[p["id"]]["status_checked_at"] = p["now"]
    return []


@_query
def _last_request_to(db: _Db, p: Params) -> list[Row]:
    found = [
        s
        for s in db.sms.values()
        if s["recipient"] == p["recipient"]
        and s.get("sent_at") is not None
        and s["sent_at"] >= p["since"]
    ]
    if not found:
        return []
    s = max(found, key=lambda s: (s["sent_at"], s["id"]))
    r = db.requests[s["request_pk"]]
    return [
        (
            r["request_id"],
            r["mail_from"],
            s["sent_at"],
            r["reply_in_reply_to"],
            r["reply_references"],
            r["pk"],
        )
    ]


def _same_group(part: dict[str, Any], p: Params) -> bool:
    return all(part[k] == p[k] for k in _KEY)


@_query
def _insert_inbound_part(db: _Db, p: Params) -> list[Row]:
    if any(_same_group(x, p) and x["sequence"] == p["sequence"] for x in db.inbound_parts.values()):
        return []
    return [(db.insert(db.inbound_parts, {**p, "inbound_id": None}),)]


@_query
def _inbound_group(db: _Db, p: Params) -> list[Row]:
    parts = sorted(
        (x for x in db.inbound_parts.values() if _same_group(x, p) and x["inbound_id"] is None),
        key=lambda x: (x["sequence"], x["id"]),
    )
    return [(x["sequence"], x["text"], x["received_at"]) for x in parts]


@_query
def _set_parts_done(db: _Db, p: Params) -> list[Row]:
    for x in db.inbound_parts.values():
        if _same_group(x, p) and x["inbound_id"] is None:
            x["inbound_id"] = p["inbound_id"]
    return []


@_query
def _stale_part_groups(db: _Db, p: Params) -> list[Row]:
    first: dict[tuple[Any, ...], Any] = {}
    for x in db.inbound_parts.values():
        if x["inbound_id"] is None:
            key = tuple(x[k] for k in _KEY)
            first[key] = min(first.get(key, x["received_at"]), x["received_at"])
    return [(*key, at) for key, at in first.items() if at < p["before"]]


@_query
def _prune_done_parts(db: _Db, p: Params) -> list[Row]:
    for key in [
        k
        for k, x in db.inbound_parts.items()
        if x["inbound_id"] is not None and x["received_at"] < p["before"]
    ]:
        del db.inbound_parts[key]
    return []


@_query
def _insert_inbound(db: _Db, p: Params) -> list[Row]:
    row = {
        **p,
        "stored_at": p["now"],
        "due": p["now"] if p["state"] == _QUEUED else None,
        "attempts": 0,
        "lease_until": None,
        "error": None,
        "sent_at": None,
    }
    return [(db.insert(db.inbound, row),)]


@_query
def _next_inbound_due(db: _Db, p: Params) -> list[Row]:
    return _min(
        i["due"] if i["state"] == _QUEUED else i["lease_until"]
        for i in db.inbound.values()
        if i["state"] in (_QUEUED, _SENDING)
    )


@_query
def _claim_inbound(db: _Db, p: Params) -> list[Row]:
    now = p["now"]
    ready = sorted(
        (
            i
            for i in db.inbound.values()
            if (i["state"] == _QUEUED and i["due"] <= now)
            or (i["state"] == _SENDING and i["lease_until"] is not None and i["lease_until"] <= now)
        ),
        key=lambda i: (i["due"], i["id"]),
    )[: max(p["limit"], 0)]
    rows: list[Row] = []
    for i in ready:
        i.update(state=_SENDING, lease_until=p["until"])
        rows.append(
            (
                i["id"],
                i["recipient"],
                i["from_address"],
                i["subject"],
                i["in_reply_to"],
                i["refs"],
                i["body"],
                i["attempts"],
                i["due"],
            )
        )
    return rows


@_query
def _set_inbound_sent(db: _Db, p: Params) -> list[Row]:
    i = db.inbound.get(p["id"])
    if i is not None and i["state"] != _MAILED:
        i.update(state=_MAILED, lease_until=None, error=None, sent_at=p["now"])
        i["attempts"] += 1
    return []


@_query
def _set_inbound_retry(db: _Db, p: Params) -> list[Row]:
    i = db.inbound.get(p["id"])
    if i is not None and i["state"] != _MAILED:
        i.update(state=_QUEUED, due=p["due"], lease_until=None, error=p["error"])
        i["attempts"] += 1
    return []


@_query
def _list_inbound(db: _Db, p: Params) -> list[Row]:
    rows = sorted(db.inbound.values(), key=lambda i: i["id"], reverse=True)[: p["limit"]]
    return [
        (
            i["id"],
            i["provider"],
            i["source"],
            i["destination"],
            i["text"],
            i["received_at"],
            i["parts"],
            i["state"],
            i["recipient"],
            None if i["request_pk"] is None else db.requests[i["request_pk"]]["request_id"],
            i["attempts"],
            i["sent_at"],
        )
        for i in rows
    ]
