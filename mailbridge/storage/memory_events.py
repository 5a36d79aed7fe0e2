"""The named queries of receipts and inbound SMS for the memory backend.

One Python function per query of ``sqlite_queries.sql`` / ``postgres_queries.sql``
of the same name, over :class:`~mailbridge.storage.memory_tables.Tables`: what
:mod:`mailbridge.storage.events_domain` runs (receipts matched, applied or
kept; the part ids of SMS sent in parts; status checks; SMS from phones, their
parts and routing). Their mails are queued here and sent through
:mod:`mailbridge.storage.memory_mails`.
"""

from __future__ import annotations

from typing import Any

from mailbridge.models import InboundState, SmsState
from mailbridge.storage.connector import Params, Row
from mailbridge.storage.memory_tables import Queries, Table, Tables, delete_where, set_flag

__all__ = ["QUERIES"]

QUERIES = Queries()

_SENT = SmsState.SENT.value
_QUEUED = InboundState.QUEUED.value
_KEY = ("provider", "source", "destination", "reference", "total")


def _newest_by_provider_id(table: Table, p: Params) -> dict[str, Any] | None:
    """The newest row of ``table`` the provider gave the id ``provider_id``."""
    found = [
        r
        for r in table.values()
        if r["provider"] == p["provider"] and r["provider_id"] == p["provider_id"]
    ]
    return max(found, key=lambda r: r["id"], default=None)


@QUERIES.add
def _sms_by_provider_id(db: Tables, p: Params) -> list[Row]:
    s = _newest_by_provider_id(db.sms, p)
    return [] if s is None else [(s["id"], s["state"], s["request_pk"])]


@QUERIES.add
def _sms_part_by_id(db: Tables, p: Params) -> list[Row]:
    x = _newest_by_provider_id(db.sms_parts, p)
    if x is None:
        return []
    s = db.sms[x["sms_id"]]
    return [(x["id"], s["id"], s["state"], s["request_pk"])]


@QUERIES.add
def _set_part_state(db: Tables, p: Params) -> list[Row]:
    x = db.sms_parts[p["id"]]
    if x["state"] is None:
        x["state"] = p["state"]
    return []


@QUERIES.add
def _sms_part_states(db: Tables, p: Params) -> list[Row]:
    parts = sorted(
        (x for x in db.sms_parts.values() if x["sms_id"] == p["sms_id"]), key=lambda x: x["id"]
    )
    return [(x["state"],) for x in parts]


@QUERIES.add
def _delete_sms_parts(db: Tables, p: Params) -> list[Row]:
    return delete_where(db.sms_parts, "sms_id", (p["sms_id"],))


@QUERIES.add
def _insert_sms_part(db: Tables, p: Params) -> list[Row]:
    db.insert(db.sms_parts, {**p, "state": None})
    return []


@QUERIES.add
def _set_receipt(db: Tables, p: Params) -> list[Row]:
    db.sms[p["id"]].update(
        state=p["state"],
        receipt_status=p["status"],
        receipt_error=p["error_code"],
        receipt_at=p["at"],
    )
    return []


@QUERIES.add
def _keep_receipt(db: Tables, p: Params) -> list[Row]:
    db.insert(db.receipts_kept, {**p, "received_at": p["now"]})
    return []


def _kept(db: Tables, p: Params) -> list[dict[str, Any]]:
    return sorted(
        (
            k
            for k in db.receipts_kept.values()
            if k["provider"] == p["provider"] and k["provider_id"] == p["provider_id"]
        ),
        key=lambda k: k["id"],
    )


@QUERIES.add
def _kept_receipts(db: Tables, p: Params) -> list[Row]:
    return [(k["state"], k["status"], k["error_code"], k["at"]) for k in _kept(db, p)]


@QUERIES.add
def _any_kept_receipt(db: Tables, p: Params) -> list[Row]:
    return [(1,)] if db.receipts_kept else []


@QUERIES.add
def _drop_kept_receipts(db: Tables, p: Params) -> list[Row]:
    for k in _kept(db, p):
        del db.receipts_kept[k["id"]]
    return []


@QUERIES.add
def _lock_request_undelivered(db: Tables, p: Params) -> list[Row]:
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


@QUERIES.add
def _request_outcomes(db: Tables, p: Params) -> list[Row]:
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


QUERIES.put("set_undelivered_sent", set_flag("undelivered_sent"))


@QUERIES.add
def _status_candidates(db: Tables, p: Params) -> list[Row]:
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


@QUERIES.add
def _set_status_checked(db: Tables, p: Params) -> list[Row]:
    db.sms[p["id"]]["status_checked_at"] = p["now"]
    return []


@QUERIES.add
def _last_request_to(db: Tables, p: Params) -> list[Row]:
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


@QUERIES.add
def _insert_inbound_part(db: Tables, p: Params) -> list[Row]:
    if any(_same_group(x, p) and x["sequence"] == p["sequence"] for x in db.inbound_parts.values()):
        return []
    return [(db.insert(db.inbound_parts, {**p, "inbound_id": None}),)]


@QUERIES.add
def _inbound_group(db: Tables, p: Params) -> list[Row]:
    parts = sorted(
        (x for x in db.inbound_parts.values() if _same_group(x, p) and x["inbound_id"] is None),
        key=lambda x: (x["sequence"], x["id"]),
    )
    return [(x["sequence"], x["text"], x["received_at"]) for x in parts]


@QUERIES.add
def _set_parts_done(db: Tables, p: Params) -> list[Row]:
    for x in db.inbound_parts.values():
        if _same_group(x, p) and x["inbound_id"] is None:
            x["inbound_id"] = p["inbound_id"]
    return []


@QUERIES.add
def _stale_part_groups(db: Tables, p: Params) -> list[Row]:
    first: dict[tuple[Any, ...], Any] = {}
    for x in db.inbound_parts.values():
        if x["inbound_id"] is None:
            key = tuple(x[k] for k in _KEY)
            first[key] = min(first.get(key, x["received_at"]), x["received_at"])
    return [(*key, at) for key, at in first.items() if at < p["before"]]


@QUERIES.add
def _prune_done_parts(db: Tables, p: Params) -> list[Row]:
    for key in [
        k
        for k, x in db.inbound_parts.items()
        if x["inbound_id"] is not None and x["received_at"] < p["before"]
    ]:
        del db.inbound_parts[key]
    return []


@QUERIES.add
def _insert_inbound(db: Tables, p: Params) -> list[Row]:
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
