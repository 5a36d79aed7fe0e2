"""The named queries of the mailer's queue for the memory backend.

One Python function per query of ``sqlite_queries.sql`` / ``postgres_queries.sql``
of the same name, over :class:`~mailbridge.storage.memory_tables.Tables`: what
:mod:`mailbridge.storage.mail_queue` runs on reply mails and on the mails of
SMS from phones. The two tables live alike (queued, leased while ``sending``,
then ``sent``, queued again, or, for reply mails, ``dropped``), so one claim
and one state change serve both.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter, itemgetter
from typing import Any

from mailbridge.models import ReplyState
from mailbridge.storage.connector import Params, Row
from mailbridge.storage.memory_tables import (
    Queries,
    Table,
    Tables,
    claimable,
    next_claimable,
    unlease,
)

__all__ = ["QUERIES"]

QUERIES = Queries()

# reply mails and inbound mails have the same state names (InboundState mirrors ReplyState)
_QUEUED, _SENDING, _SENT = ReplyState.QUEUED.value, ReplyState.SENDING.value, ReplyState.SENT.value

_REPLY_JOB = itemgetter("recipient", "subject", "in_reply_to", "refs", "body", "attempts", "due")
_INBOUND_JOB = itemgetter(
    "id", "recipient", "from_address", "subject", "in_reply_to", "refs", "body", "attempts", "due"
)


def _claim(table: Table, p: Params) -> list[dict[str, Any]]:
    """Lease the due mails of ``table``, oldest first, at most ``limit``."""
    mails = claimable(table, p["now"], _QUEUED)[: max(p["limit"], 0)]
    for mail in mails:
        mail.update(state=_SENDING, lease_until=p["until"])
    return mails


def _settle(table: Table, mail_id: int, **changes: Any) -> list[Row]:
    """One try of a mail is over (a mail already sent stays so): ``changes``, lease gone,
    one attempt more."""
    mail = table.get(mail_id)
    if mail is not None and mail["state"] != _SENT:
        unlease(mail, **changes)
        mail["attempts"] += 1
    return []


def _queue(kind: str, table: Callable[[Tables], Table]) -> None:
    """The queries both kinds of mail have alike, ``<query>_<kind>``-named, on ``table``."""

    def next_due(db: Tables, p: Params) -> list[Row]:
        return next_claimable(table(db), _QUEUED)

    def sent(db: Tables, p: Params) -> list[Row]:
        return _settle(table(db), p["id"], state=_SENT, error=None, sent_at=p["now"])

    def retry(db: Tables, p: Params) -> list[Row]:
        return _settle(table(db), p["id"], state=_QUEUED, due=p["due"], error=p["error"])

    QUERIES.put(f"next_{kind}_due", next_due)
    QUERIES.put(f"set_{kind}_sent", sent)
    QUERIES.put(f"set_{kind}_retry", retry)


_queue("reply", attrgetter("replies"))
_queue("inbound", attrgetter("inbound"))


@QUERIES.add
def _claim_replies(db: Tables, p: Params) -> list[Row]:
    return [
        (r["id"], db.requests[r["request_pk"]]["request_id"], *_REPLY_JOB(r))
        for r in _claim(db.replies, p)
    ]


@QUERIES.add
def _set_reply_dropped(db: Tables, p: Params) -> list[Row]:
    return _settle(db.replies, p["id"], state=ReplyState.DROPPED.value, error=p["error"])


@QUERIES.add
def _claim_inbound(db: Tables, p: Params) -> list[Row]:
    return [_INBOUND_JOB(i) for i in _claim(db.inbound, p)]
