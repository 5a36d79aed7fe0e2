"""The mailer's queue, written once for every backend: reply mails and the mails of SMS
from phones.

:class:`MailQueue` is mixed into :class:`~mailbridge.storage.domain.Store`: the
methods of :class:`~mailbridge.storage.base.ReplyStore`. Both kinds of mail are
queued elsewhere (reply mails by an intake, ``mark_failed`` or a receipt;
inbound mails by :mod:`~mailbridge.storage.events_domain`) and go the same way
from here: claimed under a lease, then sent, queued again at a later time, or
(reply mails) dropped for good. The two tables have the same life, so one
claim and one set of state changes serve both, by query name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from mailbridge.core.records import InboundMailJob, ReplyJob
from mailbridge.storage.common import shorten, to_ts
from mailbridge.storage.connector import Row, Tx
from mailbridge.storage.mixin import StoreMixin

__all__ = ["MailQueue"]

J = TypeVar("J")


class MailQueue(StoreMixin):
    """Reply mails and inbound mails for the mailer (see the module docstring)."""

    # --- reply mails ------------------------------------------------------------

    async def next_reply_due(self) -> datetime | None:
        """Earliest time a reply becomes claimable."""
        return await self._read_time("next_reply_due")

    async def claim_replies(self, now: datetime, *, limit: int, lease_s: float) -> list[ReplyJob]:
        """Lease up to ``limit`` due replies, oldest first, each to one claimer."""
        return await self._claim("claim_replies", _reply_job, now, limit=limit, lease_s=lease_s)

    async def mark_reply_sent(self, reply_id: int, now: datetime) -> None:
        """The smarthost took the reply."""
        await self._mail_sent("set_reply_sent", reply_id, now)

    async def mark_reply_retry(
        self, reply_id: int, *, due: datetime, error: str, now: datetime
    ) -> None:
        """The smarthost failed: queued again at ``due``."""
        await self._mail_retry("set_reply_retry", reply_id, due=due, error=error)

    async def mark_reply_dropped(self, reply_id: int, *, error: str, now: datetime) -> None:
        """The smarthost refused the reply for good (5xx): kept as ``dropped``, not retried."""
        to_ts(now)
        await self._write("set_reply_dropped", {"id": reply_id, "error": shorten(error)})

    # --- the mails of SMS from phones -------------------------------------------

    async def next_inbound_due(self) -> datetime | None:
        """Earliest time an inbound mail becomes claimable."""
        return await self._read_time("next_inbound_due")

    async def claim_inbound_mails(
        self, now: datetime, *, limit: int, lease_s: float
    ) -> list[InboundMailJob]:
        """Lease up to ``limit`` due inbound mails, oldest first, each to one claimer."""
        return await self._claim("claim_inbound", _inbound_job, now, limit=limit, lease_s=lease_s)

    async def mark_inbound_sent(self, inbound_id: int, now: datetime) -> None:
        """The smarthost took the mail."""
        await self._mail_sent("set_inbound_sent", inbound_id, now)

    async def mark_inbound_retry(
        self, inbound_id: int, *, due: datetime, error: str, now: datetime
    ) -> None:
        """The smarthost failed: queued again at ``due``."""
        await self._mail_retry("set_inbound_retry", inbound_id, due=due, error=error)

    # --- what both kinds share --------------------------------------------------

    async def _claim(
        self, query: str, job: Callable[[Row], J], now: datetime, *, limit: int, lease_s: float
    ) -> list[J]:
        """Lease the due mails ``query`` picks (its last column: the due time), oldest
        first, as ``job`` makes them."""
        if limit <= 0:
            return []
        to_ts(now)
        params = {"now": now, "limit": limit, "until": now + timedelta(seconds=lease_s)}

        async def work(tx: Tx) -> list[J]:
            rows = await tx.claim(query, params)
            return [job(r) for r in sorted(rows, key=lambda r: (tx.moment(r[-1]), r[0]))]

        return await self._connector.transaction(work)

    async def _mail_sent(self, query: str, mail_id: int, now: datetime) -> None:
        to_ts(now)
        await self._write(query, {"id": mail_id, "now": now})

    async def _mail_retry(self, query: str, mail_id: int, *, due: datetime, error: str) -> None:
        to_ts(due)
        await self._write(query, {"id": mail_id, "due": due, "error": shorten(error)})


def _reply_job(r: Row) -> ReplyJob:
    return ReplyJob(
        reply_id=r[0],
        request_id=r[1],
        to=r[2],
        subject=r[3],
        in_reply_to=r[4],
        references=r[5],
        body=r[6],
        attempts=r[7],
    )


def _inbound_job(r: Row) -> InboundMailJob:
    return InboundMailJob(
        inbound_id=r[0],
        to=r[1],
        from_address=r[2],
        subject=r[3],
        in_reply_to=r[4],
        references=r[5],
        body=r[6],
        attempts=r[7],
    )
