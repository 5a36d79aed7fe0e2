"""The named queries of operators and monitoring for the memory backend.

One Python function per query of ``sqlite_queries.sql`` / ``postgres_queries.sql``
of the same name, over :class:`~mailbridge.storage.memory_tables.Tables`: what
:mod:`mailbridge.storage.admin` runs (``mailbridge queue`` and ``balance``:
requests and their rows, attempts and replies, retry and cancel, the SMS from
phones; the queue figures of monitoring).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from mailbridge.models import ReplyState, SmsState
from mailbridge.storage.common import RETRYABLE_STATES
from mailbridge.storage.connector import Params, Row
from mailbridge.storage.memory_tables import SENDING, Queries, Tables, min_time, unlease

__all__ = ["QUERIES"]

QUERIES = Queries()

_SCHEDULED = SmsState.SCHEDULED.value
_RETRYABLE = frozenset(s.value for s in RETRYABLE_STATES)

# The columns of the rows the queries give, in the order of the SQL files.
_SUMMARY = itemgetter("pk", "request_id", "account", "received_at", "mode", "result", "sms_total")
_DETAIL = itemgetter("client_ip", "mail_from", "sender", "format", "due", "charged")
_SMS_VIEW = itemgetter(
    "id", "recipient", "state", "parts", "due", "provider", "provider_id", "error",
    "receipt_status", "receipt_error", "receipt_at", "sent_at",
)  # fmt: skip
_ATTEMPT = itemgetter("sms_id", "at", "provider", "outcome", "answer")
_REPLY_VIEW = itemgetter("id", "recipient", "state", "attempts", "body", "due", "sent_at")


# --- requests ----------------------------------------------------------------------------


def _rows_of(db: Tables, pk: int, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
    wanted = None if states is None else frozenset(states)
    return [
        s
        for s in sorted(db.sms.values(), key=lambda s: s["id"])
        if s["request_pk"] == pk and (wanted is None or s["state"] in wanted)
    ]


@QUERIES.add
def _list_requests(db: Tables, p: Params) -> list[Row]:
    rows: list[Row] = []
    for r in sorted(db.requests.values(), key=lambda r: r["pk"], reverse=True):
        if len(rows) >= p["limit"]:
            break
        if p["account"] is not None and r["account"] != p["account"]:
            continue
        if p["state"] is not None and not _rows_of(db, r["pk"], [p["state"]]):
            continue
        rows.append(_SUMMARY(r))
    return rows


@QUERIES.add
def _request_states(db: Tables, p: Params) -> list[Row]:
    counts: dict[tuple[int, str], int] = {}
    for pk in p["pks"]:
        for s in _rows_of(db, pk):
            counts[pk, s["state"]] = counts.get((pk, s["state"]), 0) + 1
    return [(pk, state, n) for (pk, state), n in counts.items()]


@QUERIES.add
def _newest_request(db: Tables, p: Params) -> list[Row]:
    found = [r for r in db.requests.values() if r["request_id"] == p["request_id"]]
    return [_SUMMARY(r) + _DETAIL(r) for r in sorted(found, key=lambda r: -r["pk"])[:1]]


@QUERIES.add
def _request_sms(db: Tables, p: Params) -> list[Row]:
    return [_SMS_VIEW(s) for s in _rows_of(db, p["pk"])]


@QUERIES.add
def _request_attempts(db: Tables, p: Params) -> list[Row]:
    ids = {s["id"] for s in _rows_of(db, p["pk"])}
    attempts = sorted(db.attempts.values(), key=lambda a: a["id"])
    return [_ATTEMPT(a) for a in attempts if a["sms_id"] in ids]


@QUERIES.add
def _request_replies(db: Tables, p: Params) -> list[Row]:
    replies = sorted(db.replies.values(), key=lambda r: r["id"])
    return [_REPLY_VIEW(r) for r in replies if r["request_pk"] == p["pk"]]


@QUERIES.add
def _retryable_rows(db: Tables, p: Params) -> list[Row]:
    return [(s["id"], s["parts"]) for s in _rows_of(db, p["pk"], _RETRYABLE)]


@QUERIES.add
def _reschedule(db: Tables, p: Params) -> list[Row]:
    now = p["now"]
    return unlease(db.sms[p["id"]], state=_SCHEDULED, due=now, first_due=now, error=None)


@QUERIES.add
def _scheduled_rows(db: Tables, p: Params) -> list[Row]:
    return [(s["id"], s["parts"]) for s in _rows_of(db, p["pk"], [_SCHEDULED])]


@QUERIES.add
def _cancel_row(db: Tables, p: Params) -> list[Row]:
    db.sms[p["id"]]["state"] = SmsState.CANCELLED.value
    return []


@QUERIES.add
def _list_inbound(db: Tables, p: Params) -> list[Row]:
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


# --- balance -----------------------------------------------------------------------------


@QUERIES.add
def _balance_charges(db: Tables, p: Params) -> list[Row]:
    return [(account, charged) for account, charged in sorted(db.balances.items())]


@QUERIES.add
def _charged_of(db: Tables, p: Params) -> list[Row]:
    charged = db.balances.get(p["account"])
    return [] if charged is None else [(charged,)]


# --- monitoring --------------------------------------------------------------------------


@QUERIES.add
def _queue_states(db: Tables, p: Params) -> list[Row]:
    counts: dict[str, int] = {}
    for s in db.sms.values():
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    return list(counts.items())


@QUERIES.add
def _oldest_due(db: Tables, p: Params) -> list[Row]:
    return min_time(
        s["due"] for s in db.sms.values() if s["state"] == _SCHEDULED and s["due"] <= p["now"]
    )


@QUERIES.add
def _replies_waiting(db: Tables, p: Params) -> list[Row]:
    return [
        (sum(1 for r in db.replies.values() if r["state"] in (ReplyState.QUEUED.value, SENDING)),)
    ]
