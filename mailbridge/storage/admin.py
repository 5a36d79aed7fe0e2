"""What operators and monitoring read and do, written once for every backend.

:class:`QueueAdmin` is mixed into :class:`~mailbridge.storage.domain.Store`:
the methods of :class:`~mailbridge.storage.base.QueueStore` (``mailbridge
queue list/show/retry/cancel/inbound``, ``mailbridge balance``) and of
:class:`~mailbridge.storage.base.MonitorStore` (``queue_stats``). Reads map
rows to the views of :mod:`mailbridge.core.records`; ``queue retry`` and
``queue cancel`` move a request's rows and charge or refund their parts in
one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from mailbridge.core.records import (
    Attempt,
    InboundView,
    ReplyView,
    RequestDetail,
    RequestSummary,
    SmsView,
)
from mailbridge.models import AttemptOutcome, InboundState, ReplyState, RouteKind, SmsState
from mailbridge.storage.base import QueueStats
from mailbridge.storage.common import to_ts
from mailbridge.storage.connector import Channel, Row, Tx
from mailbridge.storage.mixin import StoreMixin

__all__ = ["QueueAdmin"]


class QueueAdmin(StoreMixin):
    """Operators' reads and commands, and the queue figures (see the module docstring)."""

    async def list_requests(
        self, *, state: SmsState | None = None, account: str | None = None, limit: int = 100
    ) -> Sequence[RequestSummary]:
        """Requests, newest first, optionally those with a row in ``state`` / of ``account``."""
        if limit <= 0:
            return []
        params = {
            "state": state.value if state is not None else None,
            "account": account,
            "limit": limit,
        }

        async def work(tx: Tx) -> list[RequestSummary]:
            return await _summaries(tx, await tx.all("list_requests", params))

        return await self._connector.transaction(work, write=False)

    async def show_request(self, request_id: str) -> RequestDetail | None:
        """The newest request with ``request_id``, with its rows, attempts and replies."""

        async def work(tx: Tx) -> RequestDetail | None:
            return await _show_request(tx, request_id)

        return await self._connector.transaction(work, write=False)

    async def retry_request(self, request_id: str, now: datetime) -> int:
        """Failed/expired/cancelled rows back to ``scheduled`` now (charged again)."""
        to_ts(now)
        count = await self._connector.transaction(_requeue(request_id, now, retry=True))
        if count:
            self._connector.notify(Channel.DUE, here=False)
        return count

    async def cancel_request(self, request_id: str, now: datetime) -> int:
        """Cancel the scheduled rows of the request, refunding their parts."""
        return await self._connector.transaction(_requeue(request_id, now, retry=False))

    async def list_inbound(self, *, limit: int = 100) -> Sequence[InboundView]:
        """Inbound SMS, newest first."""
        if limit <= 0:
            return []

        async def work(tx: Tx) -> list[InboundView]:
            return [
                InboundView(
                    inbound_id=r[0],
                    provider=r[1],
                    source=r[2],
                    destination=r[3],
                    text=r[4],
                    received_at=tx.moment(r[5]),
                    parts=r[6],
                    state=InboundState(r[7]),
                    to=r[8],
                    request_id=r[9],
                    attempts=r[10],
                    sent_at=_moment(tx, r[11]),
                )
                for r in await tx.all("list_inbound", {"limit": limit})
            ]

        return await self._connector.transaction(work, write=False)

    # --- balance ----------------------------------------------------------------

    async def balance_charges(self) -> dict[str, int]:
        """Parts charged so far per account (net of refunds and top-ups)."""

        async def work(tx: Tx) -> dict[str, int]:
            return {str(r[0]): int(r[1]) for r in await tx.all("balance_charges", {})}

        return await self._connector.transaction(work, write=False)

    async def top_up(self, account: str, parts: int) -> int:
        """Give ``account`` ``parts`` more (a negative charge); its charge after."""

        async def work(tx: Tx) -> int:
            await tx.run("charge", {"account": account, "parts": -parts})
            row = await tx.one("charged_of", {"account": account})
            return int(row[0]) if row is not None else 0

        return await self._connector.transaction(work)

    # --- monitoring -------------------------------------------------------------

    async def queue_stats(self, now: datetime) -> QueueStats:
        """SMS rows by state, the oldest due one, reply mails waiting (off the write path)."""

        async def work(tx: Tx) -> QueueStats:
            states = await tx.all("queue_states", {})
            oldest = await tx.one("oldest_due", {"now": now})
            waiting = await tx.one("replies_waiting", {})
            return QueueStats(
                by_state={str(state): int(n) for state, n in states},
                oldest_due=None if oldest is None else _moment(tx, oldest[0]),
                replies_waiting=int(waiting[0]) if waiting is not None else 0,
            )

        to_ts(now)
        return await self._connector.snapshot(work)


# --- the work of each operation, inside its transaction ---------------------------------


def _moment(tx: Tx, value: object) -> datetime | None:
    """A nullable time read from a row."""
    return None if value is None else tx.moment(value)


async def _summaries(tx: Tx, rows: Sequence[Row]) -> list[RequestSummary]:
    states: dict[int, dict[SmsState, int]] = {}
    if rows:
        for pk, state, count in await tx.all("request_states", {"pks": [r[0] for r in rows]}):
            states.setdefault(pk, {})[SmsState(state)] = count
    return [
        RequestSummary(
            request_id=r[1],
            account=r[2],
            received_at=tx.moment(r[3]),
            mode=RouteKind(r[4]),
            result=r[5],
            sms_total=r[6],
            states=states.get(r[0], {}),
        )
        for r in rows
    ]


async def _show_request(tx: Tx, request_id: str) -> RequestDetail | None:
    req = await tx.one("newest_request", {"request_id": request_id})
    if req is None:
        return None
    pk = req[0]
    attempts: dict[int, list[Attempt]] = {}
    for sms_id, at, provider, outcome, answer in await tx.all("request_attempts", {"pk": pk}):
        attempts.setdefault(sms_id, []).append(
            Attempt(
                at=tx.moment(at),
                provider=provider,
                outcome=AttemptOutcome(outcome),
                answer=answer,
            )
        )
    sms = tuple(
        SmsView(
            sms_id=r[0],
            recipient=r[1],
            state=SmsState(r[2]),
            parts=r[3],
            due=tx.moment(r[4]),
            provider=r[5],
            provider_id=r[6],
            attempts=tuple(attempts.get(r[0], ())),
            error=r[7],
            receipt_status=r[8],
            receipt_error=r[9],
            receipt_at=_moment(tx, r[10]),
            sent_at=_moment(tx, r[11]),
        )
        for r in await tx.all("request_sms", {"pk": pk})
    )
    replies = tuple(
        ReplyView(
            reply_id=r[0],
            to=r[1],
            state=ReplyState(r[2]),
            attempts=r[3],
            body=r[4],
            due=tx.moment(r[5]),
            sent_at=_moment(tx, r[6]),
        )
        for r in await tx.all("request_replies", {"pk": pk})
    )
    (summary,) = await _summaries(tx, [req])
    return RequestDetail(
        summary=summary,
        client_ip=req[7],
        mail_from=req[8],
        sender=req[9],
        format=req[10],
        due=_moment(tx, req[11]),
        sms=sms,
        replies=replies,
    )


def _requeue(request_id: str, now: datetime, *, retry: bool) -> Callable[[Tx], Awaitable[int]]:
    """``queue retry`` (failed/expired/cancelled rows back to scheduled now, charged again)
    or ``queue cancel`` (scheduled rows cancelled, refunded): the rows it changed."""

    async def work(tx: Tx) -> int:
        req = await tx.one("newest_request", {"request_id": request_id})
        if req is None:
            return 0
        rows = await tx.all("retryable_rows" if retry else "scheduled_rows", {"pk": req[0]})
        if not rows:
            return 0
        if retry:
            await tx.run_many("reschedule", [{"id": r[0], "now": now} for r in rows])
        else:
            await tx.run_many("cancel_row", [{"id": r[0]} for r in rows])
        if req[12] and req[2] is not None:
            parts = sum(r[1] for r in rows)
            await tx.run("charge", {"account": req[2], "parts": parts if retry else -parts})
        return len(rows)

    return work
