"""What retention deletes, written once for every backend.

:class:`Pruning` is mixed into :class:`~mailbridge.storage.domain.Store`: the
methods of :class:`~mailbridge.storage.base.RetentionStore`, which the
retention pass (:mod:`mailbridge.runtime.retention`) calls in batches. Age is
measured by the request: request numbers grow with time, so the newest request
received before the cut (``retention_cutoff``) bounds every batch, and each
batch deletes at most ``limit`` requests' worth of rows in one short
transaction. SMS from phones go by the time the gateway stored them, once
their mail is sent or when there was no one to mail them to; one answering a
request that goes stays until then, unlinked from it.
"""

from __future__ import annotations

from datetime import datetime

from mailbridge.storage.common import to_ts
from mailbridge.storage.connector import Tx
from mailbridge.storage.mixin import StoreMixin

__all__ = ["Pruning"]

#: What goes with a finished request, children first.
_REQUEST_ROWS = (
    "delete_attempts_of",
    "delete_parts_of",
    "detach_inbound_of",
    "delete_sms_of",
    "delete_replies_of",
    "delete_mails_of",
    "delete_requests",
)


class Pruning(StoreMixin):
    """Old raw mails, finished requests, SMS from phones deleted; space given back."""

    async def prune_raw_mails(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` raw mails of requests received before ``before``."""
        return await self._prune("old_raw_mails", ("delete_mails_of",), before, limit=limit)

    async def prune_requests(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` finished requests received before ``before`` and all
        that hangs off them (SMS, attempts, replies, raw mail)."""
        return await self._prune("finished_requests", _REQUEST_ROWS, before, limit=limit)

    async def prune_inbound(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` SMS from phones stored before ``before`` whose mail is sent
        or that had no one to mail to (``kept``), with their parts; those whose mail is
        still to go stay."""
        to_ts(before)

        async def work(tx: Tx) -> int:
            rows = await tx.all("old_inbound", {"before": before, "limit": limit})
            ids = [int(r[0]) for r in rows]
            if ids:
                await tx.run("delete_inbound_parts_of", {"ids": ids})
                await tx.run("delete_inbound", {"ids": ids})
            return len(ids)

        return await self._connector.transaction(work)

    async def compact(self) -> None:
        """Give the space of deleted rows back, as the backend does it."""
        await self._connector.compact()

    async def _prune(
        self, pick: str, deletes: tuple[str, ...], before: datetime, *, limit: int
    ) -> int:
        """The requests (pks) query ``pick`` finds up to the cut, at most ``limit``, go
        through each query of ``deletes``; how many were found."""
        to_ts(before)

        async def work(tx: Tx) -> int:
            cutoff = await tx.one("retention_cutoff", {"before": before})
            if cutoff is None or cutoff[0] is None:
                return 0
            pks = [int(r[0]) for r in await tx.all(pick, {"cutoff": cutoff[0], "limit": limit})]
            if pks:
                for query in deletes:
                    await tx.run(query, {"pks": pks})
            return len(pks)

        return await self._connector.transaction(work)
