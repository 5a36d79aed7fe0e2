"""``MemoryStorage``: the domain layer over plain dicts, for tests of the other modules.

The rules are those of every backend (:mod:`mailbridge.storage.domain`); what
this module adds is a Python function for each named query, over tables
held in dicts, the way the SQL files define them for SQLite and PostgreSQL.
Nothing is durable. No query awaits anything, so each transaction is atomic
on the event loop. Set ``fail_writes`` to make every write transaction raise
:class:`~mailbridge.errors.StorageError`, as a full disk would.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, TypeVar

from mailbridge.core.records import AcceptResult, Intake
from mailbridge.errors import StorageError
from mailbridge.models import ReplyState, SmsState
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.settings import LimitsSettings
from mailbridge.storage.common import RETRYABLE_STATES, to_ts
from mailbridge.storage.connector import LocalWakeups, Params, Row, Tx
from mailbridge.storage.domain import Store
from mailbridge.storage.memory_events import QUERIES as EVENT_QUERIES

__all__ = ["QUERIES", "MemoryConnector", "MemoryStorage"]

T = TypeVar("T")
Table = dict[int, dict[str, Any]]

_SCHEDULED, _SENDING = SmsState.SCHEDULED.value, SmsState.SENDING.value
_QUEUED, _REPLY_SENDING, _SENT = (
    ReplyState.QUEUED.value,
    ReplyState.SENDING.value,
    ReplyState.SENT.value,
)
_DROPPED = ReplyState.DROPPED.value
_RETRYABLE = frozenset(s.value for s in RETRYABLE_STATES)


@dataclass(slots=True)
class _Db:
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

    def insert(self, table: Table, row: dict[str, Any]) -> int:
        key = max(table, default=0) + 1
        table[key] = {"id": key, **row}
        return key


# The columns of the rows the queries give, in the order of the SQL files.
_JOB = itemgetter(
    "recipient", "text", "sender", "format", "encoding", "parts", "due", "first_due",
    "attempts", "subject", "voice", "param", "provider",
)  # fmt: skip
_SENDING_REQUEST = itemgetter(
    "pk", "request_id", "account", "charged", "error", "test", "followup_sent", "reply_to",
    "reply_subject", "reply_in_reply_to", "reply_references",
)  # fmt: skip
_REPLY_JOB = itemgetter("recipient", "subject", "in_reply_to", "refs", "body", "attempts", "due")
_SUMMARY = itemgetter("pk", "request_id", "account", "received_at", "mode", "result", "sms_total")
_DETAIL = itemgetter("client_ip", "mail_from", "sender", "format", "due", "charged")
_SMS_VIEW = itemgetter(
    "id", "recipient", "state", "parts", "due", "provider", "provider_id", "error",
    "receipt_status", "receipt_error", "receipt_at", "sent_at",
)  # fmt: skip
_ATTEMPT = itemgetter("sms_id", "at", "provider", "outcome", "answer")
_REPLY_VIEW = itemgetter("id", "recipient", "state", "attempts", "body", "due", "sent_at")

Query = Callable[[_Db, Params], list[Row]]
QUERIES: dict[str, Query] = {}


def _query(fn: Query) -> Query:
    QUERIES[fn.__name__.lstrip("_")] = fn
    return fn


def _min(times: Iterable[datetime | None]) -> list[Row]:
    return [(min((t for t in times if t is not None), default=None),)]


# --- intake ------------------------------------------------------------------------------


@_query
def _intake_counters(db: _Db, p: Params) -> list[Row]:
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


@_query
def _next_request_pk(db: _Db, p: Params) -> list[Row]:
    return [(db.next_request,)]


@_query
def _count_replies(db: _Db, p: Params) -> list[Row]:
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


@_query
def _ip_block(db: _Db, p: Params) -> list[Row]:
    block = db.ip_blocks.get(p["ip"])
    return [] if block is None else [(block[0],)]


@_query
def _record_blocked(db: _Db, p: Params) -> list[Row]:
    if p["ip"] in db.ip_blocks:
        db.ip_blocks[p["ip"]][1] += 1
    return []


@_query
def _insert_request(db: _Db, p: Params) -> list[Row]:
    db.requests[p["pk"]] = {**p, "followup_sent": False, "undelivered_sent": False}
    db.next_request = max(db.next_request, p["pk"] + 1)
    return []


@_query
def _insert_mail(db: _Db, p: Params) -> list[Row]:
    db.mails[p["request_pk"]] = p["raw"]
    return []


@_query
def _insert_sms(db: _Db, p: Params) -> list[Row]:
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


@_query
def _save_flood(db: _Db, p: Params) -> list[Row]:
    db.flood[p["number"]] = (p["last_at"], p["streak"])
    return []


@_query
def _forget_duplicate(db: _Db, p: Params) -> list[Row]:
    kept = [at for at in db.duplicates.get(p["fingerprint"], []) if at > p["before"]]
    db.duplicates[p["fingerprint"]] = kept
    return []


@_query
def _insert_duplicate(db: _Db, p: Params) -> list[Row]:
    db.duplicates.setdefault(p["fingerprint"], []).append(p["at"])
    return []


@_query
def _charge(db: _Db, p: Params) -> list[Row]:
    db.balances[p["account"]] = db.balances.get(p["account"], 0) + p["parts"]
    return []


@_query
def _prune_ip_errors(db: _Db, p: Params) -> list[Row]:
    db.ip_errors[p["ip"]] = [at for at in db.ip_errors.get(p["ip"], []) if at > p["before"]]
    return []


@_query
def _insert_ip_error(db: _Db, p: Params) -> list[Row]:
    db.ip_errors.setdefault(p["ip"], []).append(p["at"])
    return []


@_query
def _prune_ip_blocks(db: _Db, p: Params) -> list[Row]:
    block = db.ip_blocks.get(p["ip"])
    if block is not None and block[0] <= p["now"]:
        del db.ip_blocks[p["ip"]]
    return []


@_query
def _save_ip_block(db: _Db, p: Params) -> list[Row]:
    db.ip_blocks.setdefault(p["ip"], [p["until"], 0])[0] = p["until"]
    return []


@_query
def _ip_error_times(db: _Db, p: Params) -> list[Row]:
    return [(at,) for at in db.ip_errors.get(p["ip"], []) if p["since"] < at <= p["now"]]


@_query
def _claim_owners(db: _Db, p: Params) -> list[Row]:
    owners = {s["lease_owner"] for s in db.sms.values() if s["state"] == _SENDING}
    return [(o,) for o in sorted(owners - {None})]


@_query
def _release_owner(db: _Db, p: Params) -> list[Row]:
    for s in db.sms.values():
        if s["state"] == _SENDING and s["lease_owner"] == p["owner"]:
            s.update(state=_SCHEDULED, lease_owner=None, lease_until=None)
    return []


@_query
def _retention_cutoff(db: _Db, p: Params) -> list[Row]:
    old = [pk for pk, r in db.requests.items() if r["received_at"] < p["before"]]
    return [(max(old, default=None),)]


@_query
def _old_raw_mails(db: _Db, p: Params) -> list[Row]:
    rows: list[Row] = [(pk,) for pk in sorted(db.mails) if pk <= p["cutoff"]]
    return rows[: p["limit"]]


@_query
def _finished_requests(db: _Db, p: Params) -> list[Row]:
    busy = {s["request_pk"] for s in db.sms.values() if s["state"] in (_SCHEDULED, _SENDING)}
    busy |= {r["request_pk"] for r in db.replies.values() if r["state"] in ("queued", "sending")}
    pks = sorted(pk for pk in db.requests if pk <= p["cutoff"] and pk not in busy)
    return [(pk,) for pk in pks[: p["limit"]]]


@_query
def _delete_mails_of(db: _Db, p: Params) -> list[Row]:
    for pk in p["pks"]:
        db.mails.pop(pk, None)
    return []


@_query
def _delete_attempts_of(db: _Db, p: Params) -> list[Row]:
    pks = set(p["pks"])
    ids = {i for i, s in db.sms.items() if s["request_pk"] in pks}
    for key in [k for k, a in db.attempts.items() if a["sms_id"] in ids]:
        del db.attempts[key]
    return []


@_query
def _delete_parts_of(db: _Db, p: Params) -> list[Row]:
    pks = set(p["pks"])
    ids = {i for i, s in db.sms.items() if s["request_pk"] in pks}
    for key in [k for k, part in db.sms_parts.items() if part["sms_id"] in ids]:
        del db.sms_parts[key]
    return []


@_query
def _detach_inbound_of(db: _Db, p: Params) -> list[Row]:
    pks = set(p["pks"])
    for row in db.inbound.values():
        if row.get("request_pk") in pks:
            row["request_pk"] = None
    return []


@_query
def _delete_sms_of(db: _Db, p: Params) -> list[Row]:
    pks = set(p["pks"])
    for key in [k for k, s in db.sms.items() if s["request_pk"] in pks]:
        del db.sms[key]
    return []


@_query
def _delete_replies_of(db: _Db, p: Params) -> list[Row]:
    pks = set(p["pks"])
    for key in [k for k, r in db.replies.items() if r["request_pk"] in pks]:
        del db.replies[key]
    return []


@_query
def _delete_requests(db: _Db, p: Params) -> list[Row]:
    for pk in p["pks"]:
        db.requests.pop(pk, None)
    return []


@_query
def _heartbeat(db: _Db, p: Params) -> list[Row]:
    db.instances[p["owner"]] = datetime.now(UTC)
    return []


@_query
def _stale_owners(db: _Db, p: Params) -> list[Row]:
    edge = datetime.now(UTC) - timedelta(seconds=p["stale_s"])
    return [(o,) for o, seen in sorted(db.instances.items()) if seen < edge]


@_query
def _forget_owner(db: _Db, p: Params) -> list[Row]:
    db.instances.pop(p["owner"], None)
    return []


@_query
def _insert_reply(db: _Db, p: Params) -> list[Row]:
    row = {k: v for k, v in p.items() if k != "now"}
    db.insert(
        db.replies,
        {
            **row,
            "created_at": p["now"],
            "due": p["now"],
            "state": _QUEUED,
            "attempts": 0,
            "lease_until": None,
            "error": None,
            "sent_at": None,
        },
    )
    return []


# --- delivery ----------------------------------------------------------------------------


def _claimable(table: Table, now: datetime, waiting: str) -> list[dict[str, Any]]:
    return sorted(
        (
            r
            for r in table.values()
            if (r["state"] == waiting and r["due"] <= now)
            or (r["state"] == _SENDING and r["lease_until"] is not None and r["lease_until"] <= now)
        ),
        key=lambda r: (r["due"], r["id"]),
    )


@_query
def _queue_states(db: _Db, p: Params) -> list[Row]:
    counts: dict[str, int] = {}
    for s in db.sms.values():
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    return list(counts.items())


@_query
def _oldest_due(db: _Db, p: Params) -> list[Row]:
    return _min(
        s["due"] for s in db.sms.values() if s["state"] == _SCHEDULED and s["due"] <= p["now"]
    )


@_query
def _replies_waiting(db: _Db, p: Params) -> list[Row]:
    return [(sum(1 for r in db.replies.values() if r["state"] in ("queued", _SENDING)),)]


@_query
def _next_due(db: _Db, p: Params) -> list[Row]:
    return _min(
        s["due"] if s["state"] == _SCHEDULED else s["lease_until"]
        for s in db.sms.values()
        if s["state"] in (_SCHEDULED, _SENDING)
    )


@_query
def _claim_due(db: _Db, p: Params) -> list[Row]:
    rows: list[Row] = []
    for s in _claimable(db.sms, p["now"], _SCHEDULED)[: max(p["limit"], 0)]:
        s.update(state=_SENDING, lease_owner=p["owner"], lease_until=p["until"])
        r = db.requests[s["request_pk"]]
        rows.append((s["id"], r["request_id"], r["account"], *_JOB(s)))
    return rows


@_query
def _sending_row(db: _Db, p: Params) -> list[Row]:
    s = db.sms.get(p["id"])
    if s is None or s["state"] != _SENDING:
        return []
    return [(s["id"], s["parts"], *_SENDING_REQUEST(db.requests[s["request_pk"]]))]


@_query
def _sending_ids(db: _Db, p: Params) -> list[Row]:
    return [
        (i, s["request_pk"])
        for i in p["ids"]
        if (s := db.sms.get(i)) is not None and s["state"] == _SENDING
    ]


@_query
def _insert_attempt(db: _Db, p: Params) -> list[Row]:
    db.insert(db.attempts, dict(p))
    return []


def _settle(db: _Db, sms_id: int, **changes: Any) -> list[Row]:
    s = db.sms[sms_id]
    s.update(changes, lease_owner=None, lease_until=None)
    return []


@_query
def _set_sent(db: _Db, p: Params) -> list[Row]:
    s = db.sms[p["id"]]
    return _settle(
        db,
        p["id"],
        state=SmsState.SENT.value,
        attempts=s["attempts"] + 1,
        provider=p["provider"],
        provider_id=p["provider_id"],
        error=None,
        sent_at=p["now"],
        receipt_status=None,
        receipt_error=None,
        receipt_at=None,
        status_checked_at=None,
    )


@_query
def _set_retry(db: _Db, p: Params) -> list[Row]:
    s = db.sms[p["id"]]
    return _settle(
        db,
        p["id"],
        state=_SCHEDULED,
        attempts=s["attempts"] + 1,
        due=p["due"],
        provider=p["provider"],
        error=p["error"],
    )


@_query
def _set_failed(db: _Db, p: Params) -> list[Row]:
    s = db.sms[p["id"]]
    return _settle(
        db,
        p["id"],
        state=p["state"],
        attempts=s["attempts"] + p["attempted"],
        provider=p["provider"] if p["provider"] is not None else s["provider"],
        error=p["error"],
    )


@_query
def _lock_request(db: _Db, p: Params) -> list[Row]:
    return [(db.requests[p["pk"]]["followup_sent"],)]


@_query
def _set_followup_sent(db: _Db, p: Params) -> list[Row]:
    db.requests[p["pk"]]["followup_sent"] = True
    return []


# --- replies -----------------------------------------------------------------------------


@_query
def _next_reply_due(db: _Db, p: Params) -> list[Row]:
    return _min(
        r["due"] if r["state"] == _QUEUED else r["lease_until"]
        for r in db.replies.values()
        if r["state"] in (_QUEUED, _REPLY_SENDING)
    )


@_query
def _claim_replies(db: _Db, p: Params) -> list[Row]:
    rows: list[Row] = []
    for r in _claimable(db.replies, p["now"], _QUEUED)[: max(p["limit"], 0)]:
        r.update(state=_REPLY_SENDING, lease_until=p["until"])
        rows.append((r["id"], db.requests[r["request_pk"]]["request_id"], *_REPLY_JOB(r)))
    return rows


@_query
def _set_reply_sent(db: _Db, p: Params) -> list[Row]:
    r = db.replies.get(p["id"])
    if r is not None and r["state"] != _SENT:
        r.update(state=_SENT, lease_until=None, error=None, sent_at=p["now"])
        r["attempts"] += 1
    return []


@_query
def _set_reply_retry(db: _Db, p: Params) -> list[Row]:
    r = db.replies.get(p["id"])
    if r is not None and r["state"] != _SENT:
        r.update(state=_QUEUED, due=p["due"], lease_until=None, error=p["error"])
        r["attempts"] += 1
    return []


@_query
def _balance_charges(db: _Db, p: Params) -> list[Row]:
    return [(account, charged) for account, charged in sorted(db.balances.items())]


@_query
def _charged_of(db: _Db, p: Params) -> list[Row]:
    charged = db.balances.get(p["account"])
    return [] if charged is None else [(charged,)]


@_query
def _set_reply_dropped(db: _Db, p: Params) -> list[Row]:
    r = db.replies.get(p["id"])
    if r is not None and r["state"] != _SENT:
        r.update(state=_DROPPED, lease_until=None, error=p["error"])
        r["attempts"] += 1
    return []


# --- operators ---------------------------------------------------------------------------


def _rows_of(db: _Db, pk: int, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
    wanted = None if states is None else frozenset(states)
    return [
        s
        for s in sorted(db.sms.values(), key=lambda s: s["id"])
        if s["request_pk"] == pk and (wanted is None or s["state"] in wanted)
    ]


@_query
def _list_requests(db: _Db, p: Params) -> list[Row]:
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


@_query
def _request_states(db: _Db, p: Params) -> list[Row]:
    counts: dict[tuple[int, str], int] = {}
    for pk in p["pks"]:
        for s in _rows_of(db, pk):
            counts[pk, s["state"]] = counts.get((pk, s["state"]), 0) + 1
    return [(pk, state, n) for (pk, state), n in counts.items()]


@_query
def _newest_request(db: _Db, p: Params) -> list[Row]:
    found = [r for r in db.requests.values() if r["request_id"] == p["request_id"]]
    return [_SUMMARY(r) + _DETAIL(r) for r in sorted(found, key=lambda r: -r["pk"])[:1]]


@_query
def _request_sms(db: _Db, p: Params) -> list[Row]:
    return [_SMS_VIEW(s) for s in _rows_of(db, p["pk"])]


@_query
def _request_attempts(db: _Db, p: Params) -> list[Row]:
    ids = {s["id"] for s in _rows_of(db, p["pk"])}
    attempts = sorted(db.attempts.values(), key=lambda a: a["id"])
    return [_ATTEMPT(a) for a in attempts if a["sms_id"] in ids]


@_query
def _request_replies(db: _Db, p: Params) -> list[Row]:
    replies = sorted(db.replies.values(), key=lambda r: r["id"])
    return [_REPLY_VIEW(r) for r in replies if r["request_pk"] == p["pk"]]


@_query
def _retryable_rows(db: _Db, p: Params) -> list[Row]:
    return [(s["id"], s["parts"]) for s in _rows_of(db, p["pk"], _RETRYABLE)]


@_query
def _reschedule(db: _Db, p: Params) -> list[Row]:
    now = p["now"]
    return _settle(db, p["id"], state=_SCHEDULED, due=now, first_due=now, error=None)


@_query
def _scheduled_rows(db: _Db, p: Params) -> list[Row]:
    return [(s["id"], s["parts"]) for s in _rows_of(db, p["pk"], [_SCHEDULED])]


@_query
def _cancel_row(db: _Db, p: Params) -> list[Row]:
    db.sms[p["id"]]["state"] = SmsState.CANCELLED.value
    return []


class _MemoryTx:
    """A :class:`~mailbridge.storage.connector.Tx` over the dicts: every query a function."""

    __slots__ = ("_db",)

    def __init__(self, db: _Db) -> None:
        self._db = db

    async def one(self, name: str, params: Params) -> Row | None:
        rows = QUERIES[name](self._db, params)
        return rows[0] if rows else None

    async def all(self, name: str, params: Params) -> list[Row]:
        return QUERIES[name](self._db, params)

    async def run(self, name: str, params: Params) -> None:
        QUERIES[name](self._db, params)

    async def run_many(self, name: str, rows: Sequence[Params]) -> None:
        for params in rows:
            QUERIES[name](self._db, params)

    async def claim(self, name: str, params: Params) -> list[Row]:
        return QUERIES[name](self._db, params)

    async def lock(self, keys: Iterable[tuple[str, str]]) -> None:
        """Nothing: no transaction awaits, so none interleaves with another."""

    def pipeline(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    def prune_due(self, now: datetime) -> bool:
        return False  # old limit rows stay; the windows ignore them

    def moment(self, value: Any) -> datetime:
        moment: datetime = value
        return moment


class MemoryConnector(LocalWakeups):
    observer: Observer = NULL_OBSERVER  # nothing to time: no commit

    """The :class:`~mailbridge.storage.connector.Connector` of :class:`MemoryStorage`."""

    def __init__(self) -> None:
        super().__init__()
        self.db = _Db()
        self.fail_writes = False

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release; the data stays for inspection."""

    async def transaction(self, work: Callable[[Tx], Awaitable[T]], *, write: bool = True) -> T:
        if write and self.fail_writes:
            raise StorageError("storage cannot commit (fail_writes is set)")
        return await work(_MemoryTx(self.db))

    async def snapshot(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        return await self.transaction(work, write=False)


class MemoryStorage(Store):
    """The :class:`~mailbridge.storage.base.Storage` contract held in memory."""

    def __init__(self) -> None:
        self.connector = MemoryConnector()
        super().__init__(self.connector)

    async def accept_all(
        self,
        intakes: Sequence[Intake],
        *,
        limits: LimitsSettings,
        reply_rate_per_hour: int,
        now: datetime,
    ) -> list[AcceptResult]:
        """As the other backends, all or none: memory has no rollback, so the tables are
        copied first and put back when the mail is refused."""
        saved = copy.deepcopy(self.connector.db)
        results = await super().accept_all(
            intakes, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
        )
        if len(results) == 1 and results[0].error is not None:
            self.connector.db = saved
        return results

    @property
    def fail_writes(self) -> bool:
        """Whether every write raises ``StorageError`` (a full disk, for tests)."""
        return self.connector.fail_writes

    @fail_writes.setter
    def fail_writes(self, value: bool) -> None:
        self.connector.fail_writes = value


QUERIES.update(EVENT_QUERIES)  # receipts and SMS from phones
