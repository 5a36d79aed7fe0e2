"""The named queries of intake and delivery for the memory backend.

One Python function per query of ``sqlite_queries.sql`` / ``postgres_queries.sql``
of the same name, over :class:`~mailbridge.storage.memory_tables.Tables`: what
:mod:`mailbridge.storage.intake` and :mod:`mailbridge.storage.domain` run
(an intake's counters and writes, the IP blocks, the reply mail an intake
queues; claiming SMS rows, their state changes, the follow-up reply's flag,
the owners of claims and their heartbeats).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from mailbridge.models import ReplyState, SmsState
from mailbridge.storage.common import to_ts
from mailbridge.storage.connector import Params, Row
from mailbridge.storage.memory_tables import (
    SENDING,
    Queries,
    Query,
    Tables,
    claimable,
    next_claimable,
    set_flag,
    unlease,
)

__all__ = ["QUERIES"]

QUERIES = Queries()

_SCHEDULED = SmsState.SCHEDULED.value

# The columns of the rows the queries give, in the order of the SQL files.
_JOB = itemgetter(
    "recipient", "text", "sender", "format", "encoding", "parts", "due", "first_due",
    "attempts", "subject", "voice", "param", "provider",
)  # fmt: skip
_SENDING_REQUEST = itemgetter(
    "pk", "request_id", "account", "charged", "error", "test", "followup_sent", "reply_to",
    "reply_subject", "reply_in_reply_to", "reply_references",
)  # fmt: skip


# --- intake ------------------------------------------------------------------------------


def _adding(table: str, key: str) -> Query:
    """The query counting one event of the key ``p[key]`` (a duplicate's fingerprint, an
    IP's error) at ``p["at"]`` in ``table``, a dict of times by key."""

    def query(db: Tables, p: Params) -> list[Row]:
        times: dict[str, list[datetime]] = getattr(db, table)
        times.setdefault(p[key], []).append(p["at"])
        return []

    return query


def _forgetting(table: str, key: str) -> Query:
    """The query forgetting the events of the key ``p[key]`` up to ``p["before"]``."""

    def query(db: Tables, p: Params) -> list[Row]:
        times: dict[str, list[datetime]] = getattr(db, table)
        times[p[key]] = [at for at in times.get(p[key], []) if at > p["before"]]
        return []

    return query


QUERIES.put("insert_duplicate", _adding("duplicates", "fingerprint"))
QUERIES.put("forget_duplicate", _forgetting("duplicates", "fingerprint"))
QUERIES.put("insert_ip_error", _adding("ip_errors", "ip"))
QUERIES.put("prune_ip_errors", _forgetting("ip_errors", "ip"))


@QUERIES.add
def _intake_counters(db: Tables, p: Params) -> list[Row]:
    now = p["now"]
    dups = db.duplicates.get(p["fingerprint"] or "", [])
    flood = [[n, to_ts(db.flood[n][0]), db.flood[n][1]] for n in p["numbers"] if n in db.flood]
    ip_errors = db.ip_errors.get(p["ip"] or "", [])
    return [
        (
            db.next_request,
            sum(1 for at in dups if p["dup_since"] < at <= now),
            db.balances.get(p["account"] or ""),
            json.dumps(flood),
            json.dumps([to_ts(at) for at in ip_errors if p["ip_since"] < at <= now]),
        )
    ]


@QUERIES.add
def _next_request_pk(db: Tables, p: Params) -> list[Row]:
    return [(db.next_request,)]


@QUERIES.add
def _count_replies(db: Tables, p: Params) -> list[Row]:
    since, now = p["since"], p["now"]
    return [
        (
            sum(
                1
                for r in db.replies.values()
                if r["recipient"] == p["recipient"] and since < r["created_at"] <= now
            ),
        )
    ]


@QUERIES.add
def _ip_block(db: Tables, p: Params) -> list[Row]:
    block = db.ip_blocks.get(p["ip"])
    return [] if block is None else [(block[0],)]


@QUERIES.add
def _record_blocked(db: Tables, p: Params) -> list[Row]:
    if p["ip"] in db.ip_blocks:
        db.ip_blocks[p["ip"]][1] += 1
    return []


@QUERIES.add
def _insert_request(db: Tables, p: Params) -> list[Row]:
    db.requests[p["pk"]] = {**p, "followup_sent": False, "undelivered_sent": False}
    db.next_request = max(db.next_request, p["pk"] + 1)
    return []


@QUERIES.add
def _insert_mail(db: Tables, p: Params) -> list[Row]:
    db.mails[p["request_pk"]] = p["raw"]
    return []


@QUERIES.add
def _insert_sms(db: Tables, p: Params) -> list[Row]:
    db.insert(
        db.sms,
        {
            **p,
            "state": _SCHEDULED,
            "first_due": p["due"],
            "attempts": 0,
            "lease_owner": None,
            "lease_until": None,
            "provider": None,
            "provider_id": None,
            "error": None,
            "sent_at": None,
            "receipt_status": None,
            "receipt_error": None,
            "receipt_at": None,
            "status_checked_at": None,
        },
    )
    return []


@QUERIES.add
def _save_flood(db: Tables, p: Params) -> list[Row]:
    db.flood[p["number"]] = (p["last_at"], p["streak"])
    return []


@QUERIES.add
def _charge(db: Tables, p: Params) -> list[Row]:
    db.balances[p["account"]] = db.balances.get(p["account"], 0) + p["parts"]
    return []


@QUERIES.add
def _prune_ip_blocks(db: Tables, p: Params) -> list[Row]:
    block = db.ip_blocks.get(p["ip"])
    if block is not None and block[0] <= p["now"]:
        del db.ip_blocks[p["ip"]]
    return []


@QUERIES.add
def _save_ip_block(db: Tables, p: Params) -> list[Row]:
    db.ip_blocks.setdefault(p["ip"], [p["until"], 0])[0] = p["until"]
    return []


@QUERIES.add
def _ip_error_times(db: Tables, p: Params) -> list[Row]:
    return [(at,) for at in db.ip_errors.get(p["ip"], []) if p["since"] < at <= p["now"]]


@QUERIES.add
def _insert_reply(db: Tables, p: Params) -> list[Row]:
    row = {k: v for k, v in p.items() if k != "now"}
    db.insert(
        db.replies,
        {
            **row,
            "created_at": p["now"],
            "due": p["now"],
            "state": ReplyState.QUEUED.value,
            "attempts": 0,
            "lease_until": None,
            "error": None,
            "sent_at": None,
        },
    )
    return []


# --- delivery ----------------------------------------------------------------------------


@QUERIES.add
def _next_due(db: Tables, p: Params) -> list[Row]:
    return next_claimable(db.sms, _SCHEDULED)


@QUERIES.add
def _claim_due(db: Tables, p: Params) -> list[Row]:
    rows: list[Row] = []
    for s in claimable(db.sms, p["now"], _SCHEDULED)[: max(p["limit"], 0)]:
        s.update(state=SENDING, lease_owner=p["owner"], lease_until=p["until"])
        r = db.requests[s["request_pk"]]
        rows.append((s["id"], r["request_id"], r["account"], *_JOB(s)))
    return rows


@QUERIES.add
def _sending_row(db: Tables, p: Params) -> list[Row]:
    s = db.sms.get(p["id"])
    if s is None or s["state"] != SENDING:
        return []
    return [(s["id"], s["parts"], *_SENDING_REQUEST(db.requests[s["request_pk"]]))]


@QUERIES.add
def _sending_ids(db: Tables, p: Params) -> list[Row]:
    return [
        (i, s["request_pk"])
        for i in p["ids"]
        if (s := db.sms.get(i)) is not None and s["state"] == SENDING
    ]


@QUERIES.add
def _insert_attempt(db: Tables, p: Params) -> list[Row]:
    db.insert(db.attempts, dict(p))
    return []


def _tried(db: Tables, p: Params, attempted: int, **changes: Any) -> list[Row]:
    """A try of the row ``id`` is over: ``changes``, lease gone, ``attempted`` attempts more."""
    s = db.sms[p["id"]]
    return unlease(s, attempts=s["attempts"] + attempted, **changes)


@QUERIES.add
def _set_sent(db: Tables, p: Params) -> list[Row]:
    return _tried(
        db,
        p,
        1,
        state=SmsState.SENT.value,
        provider=p["provider"],
        provider_id=p["provider_id"],
        error=None,
        sent_at=p["now"],
        receipt_status=None,
        receipt_error=None,
        receipt_at=None,
        status_checked_at=None,
    )


@QUERIES.add
def _set_retry(db: Tables, p: Params) -> list[Row]:
    changes = {"due": p["due"], "provider": p["provider"], "error": p["error"]}
    return _tried(db, p, 1, state=_SCHEDULED, **changes)


@QUERIES.add
def _set_failed(db: Tables, p: Params) -> list[Row]:
    provider = db.sms[p["id"]]["provider"] if p["provider"] is None else p["provider"]
    return _tried(db, p, p["attempted"], state=p["state"], provider=provider, error=p["error"])


@QUERIES.add
def _lock_request(db: Tables, p: Params) -> list[Row]:
    return [(db.requests[p["pk"]]["followup_sent"],)]


QUERIES.put("set_followup_sent", set_flag("followup_sent"))


# --- owners of claims ---------------------------------------------------------------------


@QUERIES.add
def _claim_owners(db: Tables, p: Params) -> list[Row]:
    owners = {s["lease_owner"] for s in db.sms.values() if s["state"] == SENDING}
    return [(o,) for o in sorted(owners - {None})]


@QUERIES.add
def _release_owner(db: Tables, p: Params) -> list[Row]:
    for s in db.sms.values():
        if s["state"] == SENDING and s["lease_owner"] == p["owner"]:
            unlease(s, state=_SCHEDULED)
    return []


@QUERIES.add
def _heartbeat(db: Tables, p: Params) -> list[Row]:
    db.instances[p["owner"]] = datetime.now(UTC)
    return []


@QUERIES.add
def _stale_owners(db: Tables, p: Params) -> list[Row]:
    edge = datetime.now(UTC) - timedelta(seconds=p["stale_s"])
    return [(o,) for o, seen in sorted(db.instances.items()) if seen < edge]


@QUERIES.add
def _forget_owner(db: Tables, p: Params) -> list[Row]:
    db.instances.pop(p["owner"], None)
    return []
