"""The storage rules of delivery receipts and SMS from phones, written once for every backend.

:class:`EventsStore` is mixed into :class:`~mailbridge.storage.domain.Store`:
the methods of :class:`~mailbridge.storage.base.EventStore` over the same
connector, named queries and transactions. The mails it queues for SMS from
phones go out through :mod:`~mailbridge.storage.mail_queue`, and operators
list them through :mod:`~mailbridge.storage.admin`. The decisions are pure
(:mod:`mailbridge.core.receipts`, :mod:`mailbridge.core.inbound`); this
module reads what they need and writes what they say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from mailbridge.core import limits as lim
from mailbridge.core.inbound import (
    PART_WAIT_S,
    LastRequest,
    StoredPart,
    assemble,
    inbound_mail,
    inbound_route,
    is_whole,
    phone_key,
)
from mailbridge.core.receipts import (
    ReceiptAction,
    RowOutcome,
    combine_parts,
    decide_receipt,
    sms_state_of,
    undelivered_body,
    undelivered_due,
)
from mailbridge.core.records import (
    InboundIn,
    InboundStored,
    ReceiptIn,
    ReceiptStored,
    ReplyDraft,
    SentForStatus,
)
from mailbridge.models import InboundState, SmsState
from mailbridge.settings import InboundSettings, ReplySettings
from mailbridge.storage.common import shorten, to_ts
from mailbridge.storage.connector import Channel, Tx
from mailbridge.storage.intake import count_replies, insert_reply
from mailbridge.storage.mixin import StoreMixin

__all__ = [
    "DEFAULT_REPLY_RATE",
    "EventsStore",
    "apply_kept_receipts",
    "message_ids",
    "receipt_lock",
]

#: ``reply_rate_per_hour`` when a caller does not give it (SPEC §5's default).
DEFAULT_REPLY_RATE = ReplySettings().reply_rate_per_hour

_FAILED = frozenset({SmsState.FAILED.value, SmsState.EXPIRED.value})


class EventsStore(StoreMixin):
    """Receipts and inbound SMS over ``self._connector`` (see the module docstring)."""

    async def record_receipt(
        self, receipt: ReceiptIn, *, now: datetime, reply_rate_per_hour: int
    ) -> ReceiptStored:
        """Apply, record or keep one receipt (see :class:`EventStorage`)."""
        to_ts(now)
        to_ts(receipt.at)

        async def work(tx: Tx) -> ReceiptStored:
            return await _record_receipt(tx, receipt, now=now, rate=reply_rate_per_hour)

        stored = await self._connector.transaction(work)
        if stored.mail_queued:
            self._connector.notify(Channel.REPLIES, here=True)
        return stored

    async def claim_status_checks(
        self, provider: str, *, now: datetime, every_s: float, max_age_s: float, limit: int
    ) -> list[SentForStatus]:
        """Rows of ``provider`` in ``sent`` due a status question; marked asked now."""
        if limit <= 0:
            return []
        params = {
            "provider": provider,
            "now": now,
            "sent_since": now - timedelta(seconds=max_age_s),
            "asked_before": now - timedelta(seconds=every_s),
            "limit": limit,
        }

        async def work(tx: Tx) -> list[SentForStatus]:
            rows = await tx.all("status_candidates", params)
            if rows:
                await tx.run_many("set_status_checked", [{"id": r[0], "now": now} for r in rows])
            return [
                SentForStatus(
                    sms_id=r[0], recipient=r[1], provider_id=r[2], sent_at=tx.moment(r[3])
                )
                for r in rows
            ]

        return await self._connector.transaction(work)

    async def store_inbound(
        self, sms: InboundIn, *, now: datetime, settings: InboundSettings, domain: str
    ) -> InboundStored:
        """Store one inbound SMS or part; route and queue a whole message's mail."""
        to_ts(now)
        to_ts(sms.received_at)

        async def work(tx: Tx) -> InboundStored:
            return await _store_inbound(tx, sms, now=now, settings=settings, domain=domain)

        return await self._connector.transaction(work)

    async def flush_inbound_parts(
        self, *, now: datetime, settings: InboundSettings, domain: str
    ) -> int:
        """Messages whose parts stopped coming, stored with gaps; how many."""
        to_ts(now)
        before = now - timedelta(seconds=PART_WAIT_S)

        async def work(tx: Tx) -> int:
            groups = await tx.all("stale_part_groups", {"before": before})
            for provider, source, destination, reference, total, _first in groups:
                key = {
                    "provider": provider,
                    "source": source,
                    "destination": destination,
                    "reference": reference,
                    "total": total,
                }
                await _complete_group(tx, key, now=now, settings=settings, domain=domain)
            await tx.run("prune_done_parts", {"before": now - timedelta(seconds=2 * PART_WAIT_S)})
            return len(groups)

        return await self._connector.transaction(work)


# --- receipts ----------------------------------------------------------------------------


def message_ids(provider_id: str) -> list[str]:
    """The provider's message ids in a row's ``provider_id`` (an SMS sent as several
    parts keeps them comma-separated)."""
    return [i for i in provider_id.split(",") if i] if "," in provider_id else [provider_id]


def receipt_lock(provider: str, provider_id: str) -> tuple[str, str]:
    """The lock ``record_receipt`` and ``mark_sent`` take on one provider id (PostgreSQL:
    a receipt kept while another instance records that id is never missed)."""
    return ("receipt", f"{provider}\0{provider_id}")


async def _record_receipt(
    tx: Tx, receipt: ReceiptIn, *, now: datetime, rate: int, lock: bool = True
) -> ReceiptStored:
    if lock:
        await tx.lock([receipt_lock(receipt.provider, receipt.message_id)])
    key = {"provider": receipt.provider, "provider_id": receipt.message_id}
    row = await tx.one("sms_by_provider_id", key)
    if row is None:
        part = await tx.one("sms_part_by_id", key)
        if part is not None:
            return await _part_receipt(tx, part, receipt, now=now, rate=rate)
    current = None if row is None else SmsState(row[1])
    action = decide_receipt(current, receipt.state)
    if action is ReceiptAction.KEEP:
        await tx.run(
            "keep_receipt",
            {
                **key,
                "state": receipt.state,
                "status": shorten(receipt.status, 100),
                "error_code": _code(receipt.error_code),
                "at": receipt.at,
                "now": now,
            },
        )
        return ReceiptStored(action=action, sms_id=None if row is None else row[0])
    assert row is not None
    sms_id, _, request_pk = row
    queued = await _settle(tx, sms_id, request_pk, current, receipt, action, now=now, rate=rate)
    return ReceiptStored(action=action, sms_id=sms_id, mail_queued=queued)


async def _part_receipt(
    tx: Tx, part: Sequence[Any], receipt: ReceiptIn, *, now: datetime, rate: int
) -> ReceiptStored:
    """A receipt for one part of an SMS sent as several: the part keeps its first final
    state, the row takes the state of its parts together (:func:`combine_parts`)."""
    part_id, sms_id, state, request_pk = part
    if sms_state_of(receipt.state) is not None:
        await tx.run("set_part_state", {"id": part_id, "state": receipt.state})
    states = [r[0] for r in await tx.all("sms_part_states", {"sms_id": sms_id})]
    whole = replace(receipt, state=combine_parts(states))
    current = SmsState(state)
    action = decide_receipt(current, whole.state)
    queued = await _settle(tx, sms_id, request_pk, current, whole, action, now=now, rate=rate)
    return ReceiptStored(action=action, sms_id=sms_id, mail_queued=queued)


def _code(code: str | None) -> str | None:
    return None if code is None or not code.strip() else shorten(code.strip(), 40)


async def _settle(
    tx: Tx,
    sms_id: int,
    request_pk: int,
    current: SmsState | None,
    receipt: ReceiptIn,
    action: ReceiptAction,
    *,
    now: datetime,
    rate: int,
) -> bool:
    """Write what ``action`` says for the row; whether the not-delivered mail was queued."""
    if action is ReceiptAction.DUPLICATE or (
        action is ReceiptAction.RECORD and current is not SmsState.SENT
    ):
        return False  # a repeat, or a late different final state: the log has it
    target = sms_state_of(receipt.state) if action is ReceiptAction.APPLY else SmsState.SENT
    assert target is not None
    await tx.run(
        "set_receipt",
        {
            "id": sms_id,
            "state": target.value,
            "status": shorten(receipt.status, 100),
            "error_code": _code(receipt.error_code),
            "at": receipt.at,
        },
    )
    if target.value not in _FAILED:
        return False
    return await _undelivered(tx, request_pk, now=now, rate=rate)


async def _undelivered(tx: Tx, request_pk: int, *, now: datetime, rate: int) -> bool:
    """Queue the request's not-delivered mail when it is due (module docstring of
    :mod:`mailbridge.core.receipts`); whether it was."""
    req = await tx.one("lock_request_undelivered", {"pk": request_pk})
    if req is None:
        return False
    sent, request_id, error, reply_to, subject, in_reply_to, references = req
    if error is not None or reply_to is None:
        return False
    rows = [
        RowOutcome(
            recipient=r[0],
            state=SmsState(r[1]),
            status=r[2],
            error_code=r[3],
            by_receipt=r[4] is not None,
        )
        for r in await tx.all("request_outcomes", {"pk": request_pk})
    ]
    if not undelivered_due(rows, already_sent=bool(sent)):
        return False
    if not lim.reply_allowed(await count_replies(tx, reply_to, now), rate):
        return False
    await tx.run("set_undelivered_sent", {"pk": request_pk})
    draft = ReplyDraft(to=reply_to, subject=subject, in_reply_to=in_reply_to, references=references)
    await insert_reply(tx, request_pk, draft, undelivered_body(request_id, rows), now)
    return True


async def apply_kept_receipts(
    tx: Tx,
    sms_id: int,
    request_pk: int,
    *,
    provider: str,
    provider_id: str,
    now: datetime,
    rate: int,
    any_kept: bool = True,
) -> bool:
    """Inside ``mark_sent``: record the part ids of an SMS sent as several parts, then
    apply the receipts kept for its id(s), in the order they came; whether a
    not-delivered mail was queued. ``any_kept`` False: no receipt is kept at all
    (``any_kept_receipt``, read under the ids' locks), nothing to look up."""
    ids = message_ids(provider_id)
    await tx.lock([receipt_lock(provider, i) for i in ids])
    if len(ids) > 1:
        await tx.run("delete_sms_parts", {"sms_id": sms_id})  # sent before under other ids
        await tx.run_many(
            "insert_sms_part",
            [{"sms_id": sms_id, "provider": provider, "provider_id": i} for i in ids],
        )
    queued = False
    for message_id in ids if any_kept else ():
        key = {"provider": provider, "provider_id": message_id}
        kept = await tx.all("kept_receipts", key)
        if not kept:
            continue
        await tx.run("drop_kept_receipts", key)
        for state, status, error_code, at in kept:
            receipt = ReceiptIn(
                provider=provider,
                message_id=message_id,
                state=state,
                status=status,
                error_code=error_code,
                at=tx.moment(at),
            )
            stored = await _record_receipt(tx, receipt, now=now, rate=rate, lock=False)
            queued = stored.mail_queued or queued
    return queued


# --- inbound -----------------------------------------------------------------------------


async def _store_inbound(
    tx: Tx, sms: InboundIn, *, now: datetime, settings: InboundSettings, domain: str
) -> InboundStored:
    if sms.concat is None or sms.concat[1] <= 1:
        inbound_id, queued = await _new_message(
            tx,
            provider=sms.provider,
            source=sms.source,
            destination=sms.destination,
            text=sms.text,
            received_at=sms.received_at,
            parts=1,
            now=now,
            settings=settings,
            domain=domain,
        )
        return InboundStored(inbound_id=inbound_id, mail_queued=queued)
    reference, total, sequence = sms.concat
    key = {
        "provider": sms.provider,
        "source": sms.source,
        "destination": sms.destination,
        "reference": reference,
        "total": total,
    }
    inserted = await tx.one(
        "insert_inbound_part",
        {**key, "sequence": sequence, "text": sms.text, "received_at": sms.received_at},
    )
    if inserted is None:
        return InboundStored(inbound_id=None, duplicate=True)
    parts = await _group(tx, key)
    if not is_whole(parts, total):
        return InboundStored(inbound_id=None)
    inbound_id, queued = await _complete_group(
        tx, key, now=now, settings=settings, domain=domain, parts=parts
    )
    return InboundStored(inbound_id=inbound_id, mail_queued=queued)


async def _group(tx: Tx, key: dict[str, Any]) -> list[StoredPart]:
    return [
        StoredPart(sequence=r[0], text=r[1], received_at=tx.moment(r[2]))
        for r in await tx.all("inbound_group", key)
    ]


async def _complete_group(
    tx: Tx,
    key: dict[str, Any],
    *,
    now: datetime,
    settings: InboundSettings,
    domain: str,
    parts: list[StoredPart] | None = None,
) -> tuple[int, bool]:
    """Join a group's parts (gaps marked) into one inbound message; (its id, mail queued)."""
    if parts is None:
        parts = await _group(tx, key)
    total = int(key["total"])
    inbound_id, queued = await _new_message(
        tx,
        provider=key["provider"],
        source=key["source"],
        destination=key["destination"],
        text=assemble(parts, total),
        received_at=max(p.received_at for p in parts),
        parts=len({p.sequence for p in parts}),
        now=now,
        settings=settings,
        domain=domain,
    )
    await tx.run("set_parts_done", {**key, "inbound_id": inbound_id})
    return inbound_id, queued


async def _new_message(
    tx: Tx,
    *,
    provider: str,
    source: str,
    destination: str,
    text: str,
    received_at: datetime,
    parts: int,
    now: datetime,
    settings: InboundSettings,
    domain: str,
) -> tuple[int, bool]:
    """Store one whole inbound message, routed; (its id, whether its mail was queued)."""
    since = now - timedelta(seconds=settings.reply_window_s)
    row = await tx.one("last_request_to", {"recipient": phone_key(source), "since": since})
    last = (
        None
        if row is None
        else LastRequest(
            request_id=row[0],
            mail_from=row[1],
            sent_at=tx.moment(row[2]),
            in_reply_to=row[3] or "",
            references=row[4] or "",
        )
    )
    route = inbound_route(last, now=now, window_s=settings.reply_window_s, mail_to=settings.mail_to)
    params: dict[str, Any] = {
        "provider": provider,
        "source": source,
        "destination": destination,
        "text": text,
        "received_at": received_at,
        "parts": parts,
        "now": now,
        "request_pk": row[5] if row is not None and route.request_id is not None else None,
        "state": InboundState.KEPT.value,
        "recipient": None,
        "from_address": None,
        "subject": None,
        "in_reply_to": None,
        "refs": None,
        "body": None,
    }
    if route.to is not None:
        mail = inbound_mail(
            text=text,
            source=phone_key(source),
            destination=destination,
            received_at=received_at,
            route=route,
            domain=domain,
        )
        params.update(
            state=InboundState.QUEUED.value,
            recipient=mail.to,
            from_address=mail.from_address,
            subject=mail.subject,
            in_reply_to=mail.in_reply_to,
            refs=mail.references,
            body=mail.body,
        )
    inserted = await tx.one("insert_inbound", params)
    assert inserted is not None
    return int(inserted[0]), route.to is not None
