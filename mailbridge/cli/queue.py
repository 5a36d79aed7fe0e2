"""``mailbridge queue list|show|retry|cancel|inbound`` (SPEC §6).

Each command is a coroutine taking a :class:`~mailbridge.storage.base.QueueStore`
and a text stream, returning the exit status: 0 done, 1 no such request,
2 bad arguments, 3 storage failed. They work on the live database while the
daemon runs: SQLite in WAL mode lets this process read and write beside it,
and every action is one transaction. A running daemon notices rows put back
by ``retry`` within :data:`mailbridge.delivery.dispatcher.MAX_IDLE_S` seconds.

Output is plain text for people; times are UTC, ISO 8601 to the second.
Provider answers are shown as stored (already shortened and free of
credentials); the mail's body and passwords are never shown. ``show`` also
lists the request's reply mails (recipient, queued/sending/sent, smarthost
attempts, and the result line(s) they carry), so replies kept in the database
while no ``[reply] smarthost`` is set can be read there, and each SMS's
delivery receipt. ``inbound`` lists the SMS that came from phones, newest
first: whom each was mailed to, or ``kept`` when there was no one.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TextIO

from mailbridge.cli.storage_command import EXIT_STORAGE, StorageOpener, run_with_storage
from mailbridge.cli.table import print_table
from mailbridge.core.receipts import receipt_summary
from mailbridge.core.records import RequestSummary
from mailbridge.models import ReplyState, SmsState
from mailbridge.settings import Settings, StorageSettings
from mailbridge.storage.base import QueueStore, Storage

__all__ = [
    "EXIT_BAD_ARGS",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STORAGE",
    "kept_line",
    "parse_state",
    "queue_cancel",
    "queue_inbound",
    "queue_list",
    "queue_retry",
    "queue_show",
    "run_queue_command",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_BAD_ARGS = 2

_STATE_ORDER = list(SmsState)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _states(states: dict[SmsState, int]) -> str:
    ordered = sorted(states.items(), key=lambda item: _STATE_ORDER.index(item[0]))
    return " ".join(f"{state.value}={count}" for state, count in ordered if count) or "-"


def _row(summary: RequestSummary) -> list[str]:
    return [
        summary.request_id,
        summary.account or "-",
        _when(summary.received_at),
        summary.mode.value,
        str(summary.sms_total),
        _states(summary.states),
        summary.result,
    ]


def parse_state(value: str | None) -> SmsState | None:
    """``--state`` as an :class:`SmsState` (raises ``ValueError`` naming the choices)."""
    if value is None or value == "":
        return None
    try:
        return SmsState(value.strip().lower())
    except ValueError:
        choices = ", ".join(_STATE_ORDER)
        raise ValueError(f"unknown state {value!r} (one of: {choices})") from None


async def queue_list(
    storage: QueueStore,
    *,
    out: TextIO,
    state: SmsState | None = None,
    account: str | None = None,
    limit: int = 100,
    retention: StorageSettings | None = None,
) -> int:
    """Requests, newest first, with their SMS counted by state; then what is kept how long."""
    summaries = await storage.list_requests(state=state, account=account, limit=max(1, limit))
    if not summaries:
        print("no requests", file=out)
    else:
        header = ["ID", "ACCOUNT", "RECEIVED", "MODE", "SMS", "STATES", "RESULT"]
        print_table(header, [_row(s) for s in summaries], out)
    if retention is not None:
        print(kept_line(retention), file=out)
    return EXIT_OK


def _days(value: float) -> str:
    return "for ever" if not value else f"{value:g} days"


def kept_line(retention: StorageSettings) -> str:
    """What ``[storage] retention_days`` and ``raw_retention_days`` keep, in one line."""
    return (
        f"kept: finished requests with their SMS, attempts and replies "
        f"{_days(retention.retention_days)}; raw mails (password masked) "
        f"{_days(retention.raw_retention_days)} ([storage] retention_days, raw_retention_days)"
    )


async def queue_show(storage: QueueStore, request_id: str, *, out: TextIO) -> int:
    """One request: its summary, each SMS with every attempt, and each reply mail."""
    detail = await storage.show_request(request_id)
    if detail is None:
        print(f"no request {request_id}", file=out)
        return EXIT_NOT_FOUND
    s = detail.summary
    fields = [
        ("request", s.request_id),
        ("account", s.account or "-"),
        ("received", _when(s.received_at)),
        ("client", f"{detail.client_ip} <{detail.mail_from}>"),
        ("mode", s.mode.value),
        ("result", s.result),
        ("sender", detail.sender if detail.sender is not None else "-"),
        ("format", str(detail.format) if detail.format is not None else "-"),
        ("due", _when(detail.due)),
        ("parts", f"{s.sms_total} (the n of the result line: parts x recipients)"),
        ("messages", f"{len(detail.sms)} ({_states(s.states)})"),
    ]
    for name, value in fields:
        print(f"{name + ':':<10}{value}", file=out)
    for sms in detail.sms:
        provider = sms.provider or "-"
        pid = f" id {sms.provider_id}" if sms.provider_id else ""
        print(
            f"\n  sms {sms.sms_id}  {sms.recipient}  {sms.state.value}  parts {sms.parts}"
            f"  due {_when(sms.due)}  provider {provider}{pid}",
            file=out,
        )
        if sms.error:
            print(f"    error: {sms.error}", file=out)
        if sms.receipt_status is not None and sms.receipt_at is not None:
            receipt = receipt_summary(sms.receipt_status, sms.receipt_error, sms.receipt_at)
            print(f"    receipt: {receipt}", file=out)
        for attempt in sms.attempts:
            print(
                f"    {_when(attempt.at)}  {attempt.provider or '-'}  {attempt.outcome.value}"
                f"  {attempt.answer}".rstrip(),
                file=out,
            )
    for reply in detail.replies:
        when = (
            f"sent {_when(reply.sent_at)}"
            if reply.state is ReplyState.SENT
            else f"due {_when(reply.due)}"
        )
        print(
            f"\n  reply {reply.reply_id}  to {reply.to}  {reply.state.value}"
            f"  attempts {reply.attempts}  {when}",
            file=out,
        )
        for line in reply.body.splitlines():
            print(f"    {line}".rstrip(), file=out)
    return EXIT_OK


async def queue_retry(
    storage: QueueStore, request_id: str, *, out: TextIO, now: datetime | None = None
) -> int:
    """Put the failed, expired and cancelled SMS of a request back in the queue, due now."""
    return await _change(storage, request_id, storage.retry_request, "scheduled again", out, now)


async def queue_cancel(
    storage: QueueStore, request_id: str, *, out: TextIO, now: datetime | None = None
) -> int:
    """Cancel the SMS of a request still waiting in the queue (their parts are refunded)."""
    return await _change(storage, request_id, storage.cancel_request, "cancelled", out, now)


async def _change(
    storage: QueueStore,
    request_id: str,
    action: Callable[[str, datetime], Awaitable[int]],
    done: str,
    out: TextIO,
    now: datetime | None,
) -> int:
    """Run ``action`` on a known request and say how many SMS it changed."""
    when = now or datetime.now(UTC)
    if await storage.show_request(request_id) is None:
        print(f"no request {request_id}", file=out)
        return EXIT_NOT_FOUND
    count = await action(request_id, when)
    print(f"request {request_id}: {count} SMS {done}", file=out)
    return EXIT_OK


def _one_line(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def queue_inbound(storage: QueueStore, *, out: TextIO, limit: int = 100) -> int:
    """SMS from phones, newest first: when, from, state, to whom, the text on one line."""
    items = await storage.list_inbound(limit=max(1, limit))
    if not items:
        print("no inbound SMS", file=out)
        return EXIT_OK
    header = ["IN", "RECEIVED", "FROM", "TO-NUMBER", "PARTS", "STATE", "MAILED-TO", "TEXT"]
    rows = [
        [
            str(i.inbound_id),
            _when(i.received_at),
            i.source,
            i.destination or "-",
            str(i.parts),
            i.state.value,
            (i.to or "-") + (f" (request {i.request_id})" if i.request_id else ""),
            _one_line(i.text),
        ]
        for i in items
    ]
    print_table(header, rows, out)
    return EXIT_OK


async def _dispatch(
    storage: QueueStore,
    args: argparse.Namespace,
    out: TextIO,
    retention: StorageSettings | None = None,
) -> int:
    command = args.queue_command
    if command == "list":
        return await queue_list(
            storage,
            out=out,
            state=parse_state(getattr(args, "state", None)),
            account=getattr(args, "account", None),
            limit=getattr(args, "limit", 100),
            retention=retention,
        )
    if command == "show":
        return await queue_show(storage, args.id, out=out)
    if command == "retry":
        return await queue_retry(storage, args.id, out=out)
    if command == "cancel":
        return await queue_cancel(storage, args.id, out=out)
    if command == "inbound":
        return await queue_inbound(storage, out=out, limit=getattr(args, "limit", 100))
    raise ValueError(f"unknown queue command {command!r}")


def run_queue_command(
    settings: Settings,
    args: argparse.Namespace,
    *,
    out: TextIO,
    err: TextIO,
    open_storage: StorageOpener | None = None,
) -> int:
    """Run ``mailbridge queue …`` as parsed by the CLI; returns the exit status."""
    try:
        parse_state(getattr(args, "state", None))
    except ValueError as exc:
        print(str(exc), file=err)
        return EXIT_BAD_ARGS

    async def body(storage: Storage) -> int:
        return await _dispatch(storage, args, out, settings.storage)

    return run_with_storage(
        settings, body, err=err, failed="storage error", open_storage=open_storage
    )
