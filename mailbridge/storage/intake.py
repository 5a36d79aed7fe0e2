"""What one intake reads and writes, for every backend (the 22 columns of a request
included): the domain's ``accept`` runs :func:`accept_intake` in its transaction.

Reads: the locks of every key the intake touches, then its counters in one
query (``intake_counters``); the plan of :func:`mailbridge.storage.common.plan_intake`;
when a reply may go, the recipient's replies under its lock (always the last
lock) and the plan again. Writes: the request, the raw mail, the SMS rows,
the counters and the reply, sent together (``Tx.pipeline``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mailbridge.core import limits as lim
from mailbridge.core.records import AcceptResult, Intake, ReplyDraft
from mailbridge.settings import LimitsSettings
from mailbridge.storage.common import (
    IntakePlan,
    IntakeSnapshot,
    effective_fingerprint,
    from_ts,
    plan_intake,
    result_line,
    sms_drafts,
)
from mailbridge.storage.connector import Tx

__all__ = ["accept_intake", "count_replies", "insert_reply"]


def _json_list(value: Any) -> list[Any]:
    """A JSON array a query gave as text (NULL: empty)."""
    return json.loads(value) if value and value != "[]" else []


async def _snapshot(
    tx: Tx, intake: Intake, fingerprint: str | None, limits: LimitsSettings, now: datetime
) -> tuple[Any, IntakeSnapshot]:
    """The next request number (None: the dialect gives it later) and the counters of
    ``intake``, read after the locks of every key it reads and writes."""
    request = intake.request
    numbers = list(dict.fromkeys(request.recipients if request else ()))
    ip_error = lim.counts_as_ip_error(intake.error)
    account = intake.account if request is not None and intake.balance is not None else None
    # loops, not comprehensions, on this path: each comprehension makes a function object
    keys = []
    for n in numbers:
        keys.append(("flood", n))
    if fingerprint is not None:
        keys.append(("dup", fingerprint))
    if account is not None:
        keys.append(("balance", account))
    if ip_error:
        keys.append(("ip", intake.client_ip))
    await tx.lock(keys)
    row = await tx.one(
        "intake_counters",
        {
            "with_pk": not intake.client_id,
            "fingerprint": fingerprint,
            "dup_since": lim.since(now, limits.duplicate_window_s),
            "account": account,
            "numbers": numbers,
            # the same numbers for a dialect that looks one number up by key (SQLite)
            "number": numbers[0] if len(numbers) == 1 else None,
            "more_numbers": numbers if len(numbers) > 1 else None,
            "now": now,
            "ip": intake.client_ip if ip_error else None,
            "ip_since": lim.since(now, limits.error_block_window_s),
        },
    )
    assert row is not None
    new_pk, duplicates, charged, flood_rows, ip_rows = row
    flood = {}
    for number, epoch, streak in _json_list(flood_rows):
        flood[number] = lim.FloodState(last_at=from_ts(float(epoch)), streak=int(streak))
    ip_list = _json_list(ip_rows)
    return new_pk, IntakeSnapshot(
        duplicates=duplicates,
        flood=flood,
        charged=int(charged or 0),
        ip_errors=tuple([from_ts(float(epoch)) for epoch in ip_list]) if ip_list else (),
    )


async def count_replies(tx: Tx, recipient: str, now: datetime) -> int:
    """Replies to ``recipient`` within the hour, under the recipient's lock (always the last)."""
    await tx.lock([("reply", recipient)])
    params = {"recipient": recipient, "since": now - lim.REPLY_RATE_WINDOW, "now": now}
    row = await tx.one("count_replies", params)
    return int(row[0]) if row else 0


async def accept_intake(
    tx: Tx, intake: Intake, *, limits: LimitsSettings, reply_rate_per_hour: int, now: datetime
) -> AcceptResult:
    fingerprint = effective_fingerprint(intake)
    new_pk, snapshot = await _snapshot(tx, intake, fingerprint, limits, now)
    plan = plan_intake(
        intake, snapshot, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
    )
    reply = intake.reply
    if plan.queue_reply and reply is not None:
        # a reply may go: count the recipient's replies under its lock, then decide for good
        replies = await count_replies(tx, reply.to, now)
        snapshot = IntakeSnapshot(
            duplicates=snapshot.duplicates,
            flood=snapshot.flood,
            charged=snapshot.charged,
            replies_last_hour=replies,
            ip_errors=snapshot.ip_errors,
        )
        plan = plan_intake(
            intake, snapshot, limits=limits, reply_rate_per_hour=reply_rate_per_hour, now=now
        )
    # a client id that cannot be answered fails before anything is written
    if intake.client_id:
        request_id = intake.client_id
        line = result_line(plan.error, plan.sms_count, request_id)
        if new_pk is None:
            pk_row = await tx.one("next_request_pk", {})
            assert pk_row is not None
            new_pk = pk_row[0]
        pk = int(new_pk)
    else:
        pk = int(new_pk)
        request_id = str(pk)
        line = result_line(plan.error, plan.sms_count, request_id)
    async with tx.pipeline():
        await _write_intake(tx, intake, plan, pk=pk, request_id=request_id, line=line)
        await _write_counters(tx, intake, plan, limits=limits, now=now)
        if plan.queue_reply and reply is not None:
            await insert_reply(tx, pk, reply, line, now)
    return AcceptResult(
        request_id=request_id,
        error=plan.error,
        sms_count=plan.sms_count,
        line=line,
        reply_queued=plan.queue_reply,
    )


async def _write_intake(
    tx: Tx, intake: Intake, plan: IntakePlan, *, pk: int, request_id: str, line: str
) -> None:
    """The request row, the raw mail and the SMS rows of one intake."""
    request = intake.request
    reply = intake.reply
    await tx.run(
        "insert_request",
        {
            "pk": pk,
            "request_id": request_id,
            "result": line,
            "account": intake.account,
            "client_ip": intake.client_ip,
            "mail_from": intake.mail_from,
            "rcpt_to": list(intake.rcpt_to),
            "mode": intake.mode,
            "received_at": intake.received_at,
            "error": plan.error,
            "error_detail": intake.error_detail,
            "test": intake.test,
            "sender": request.sender if request else None,
            "format": int(request.format) if request else None,
            "translit": request.translit if request else None,
            "due": request.due if request else None,
            "sms_total": plan.sms_count,
            "charged": bool(plan.charge),
            "reply_to": reply.to if reply else None,
            "reply_subject": reply.subject if reply else None,
            "reply_in_reply_to": reply.in_reply_to if reply else None,
            "reply_references": reply.references if reply else None,
        },
    )
    await tx.run("insert_mail", {"request_pk": pk, "raw": intake.raw})
    if request is not None and plan.error is None:
        rows = []
        for d in sms_drafts(request):
            rows.append(
                {
                    "request_pk": pk,
                    "recipient": d.recipient,
                    "text": d.text,
                    "sender": request.sender,
                    "format": int(request.format),
                    "encoding": d.encoding.value,
                    "parts": d.parts,
                    "due": request.due,
                    "subject": request.subject,
                    "voice": request.voice,
                    "param": request.param,
                }
            )
        await tx.run_many("insert_sms", rows)


async def _write_counters(
    tx: Tx, intake: Intake, plan: IntakePlan, *, limits: LimitsSettings, now: datetime
) -> None:
    """The limit counters one intake changes: flood, duplicates, charge, IP errors and block."""
    rows = []
    for n, s in plan.flood.items():
        rows.append({"number": n, "last_at": s.last_at, "streak": s.streak})
    await tx.run_many("save_flood", rows)
    dup_since = lim.since(now, limits.duplicate_window_s)
    if tx.prune_due(now):
        await tx.run("prune_flood", {"before": lim.since(now, limits.flood_gap_s)})
        await tx.run("prune_duplicates", {"before": dup_since})
    if plan.duplicate is not None:
        await tx.run("forget_duplicate", {"fingerprint": plan.duplicate, "before": dup_since})
        await tx.run("insert_duplicate", {"fingerprint": plan.duplicate, "at": now})
    if plan.charge and intake.account is not None:
        await tx.run("charge", {"account": intake.account, "parts": plan.charge})
    ip = intake.client_ip
    if plan.ip_error:
        ip_since = lim.since(now, limits.error_block_window_s)
        await tx.run("prune_ip_errors", {"ip": ip, "before": ip_since})
        await tx.run("insert_ip_error", {"ip": ip, "at": now})
    if plan.block_until is not None:
        await tx.run("prune_ip_blocks", {"ip": ip, "now": now})
        await tx.run("save_ip_block", {"ip": ip, "until": plan.block_until})


async def insert_reply(tx: Tx, pk: int, reply: ReplyDraft, body: str, now: datetime) -> None:
    await tx.run(
        "insert_reply",
        {
            "request_pk": pk,
            "recipient": reply.to,
            "subject": reply.subject,
            "in_reply_to": reply.in_reply_to,
            "refs": reply.references,
            "body": body,
            "now": now,
        },
    )
