"""What a delivery receipt does to an SMS row, and the mail when a request was not delivered.

Pure decisions over plain values (SPEC §4; ``mailbridge.providers.events``):
storage reads the row a receipt names, asks :func:`decide_receipt`, and writes
what it says in the same transaction.

Decisions where the SPEC is silent:

* A receipt is matched by ``(provider, message_id)``: the provider that took
  the SMS and the id it gave (``sms.provider``/``sms.provider_id``).
* A receipt for an id no SMS row carries yet (it came before the
  ``submit_sm_resp`` was committed, or the id is unknown) is **kept**, not
  dropped: when ``mark_sent`` later records that id, the kept receipt is
  applied at once. One never matched stays listed for operators.
* Only a row in ``sent`` moves on a receipt. A row still ``scheduled`` or
  ``sending`` under that id (sent again after a crash) keeps the receipt
  until the send is recorded.
* The first final receipt wins: a repeat of the same state is a duplicate
  (nothing changes); a different final state after a final one is recorded
  but does not change the row (an ``EXPIRED`` after ``DELIVRD`` is noise).
* Interim receipts (``ENROUTE``, ``ACCEPTD``, ``UNKNOWN``) are recorded and
  change nothing.
* An SMS sent as several parts (SMPP: one ``submit_sm`` and one id per part,
  the row keeping them comma-joined) gets a receipt per part: each part keeps
  its first final state, and the SMS is ``failed`` (or ``expired``) as soon as
  one part is, ``delivered`` once every part is (:func:`combine_parts`).
* The not-delivered mail goes once per request, when every SMS of the
  request has ended ``failed`` or ``expired`` and at least one of them ended
  so after ``sent`` (a receipt said so): the sender was told ``OK`` and would
  not know otherwise. A refusal at hand-over keeps its own rule (the
  ``ERROR = 8`` follow-up of a ``test=1`` request). It is one more reply mail
  of the request: same recipient, subject and thread, same suppression rules
  (SPEC §2) and reply rate.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mailbridge.core.answers import error_line
from mailbridge.models import SmsState

__all__ = [
    "FINAL_FAILURES",
    "UNDELIVERED_ERROR",
    "ReceiptAction",
    "RowOutcome",
    "combine_parts",
    "decide_receipt",
    "receipt_summary",
    "sms_state_of",
    "undelivered_body",
    "undelivered_due",
]

#: The SMSC error number of the not-delivered mail's first line (SPEC §2: 8, with the ID).
UNDELIVERED_ERROR = 8

#: States in which an SMS finally did not reach its phone.
FINAL_FAILURES: frozenset[SmsState] = frozenset({SmsState.FAILED, SmsState.EXPIRED})

_FINAL: frozenset[SmsState] = frozenset(
    {SmsState.DELIVERED, SmsState.FAILED, SmsState.EXPIRED, SmsState.CANCELLED}
)


class ReceiptAction(enum.StrEnum):
    """What storage does with one receipt."""

    #: Move the row to the receipt's state (with time and error code).
    APPLY = "apply"
    #: Record it with the row; the state stays (interim, or a late different final state).
    RECORD = "record"
    #: The row already holds this final state: nothing to write.
    DUPLICATE = "duplicate"
    #: No row in ``sent`` carries the id yet: keep it until ``mark_sent`` records the id.
    KEEP = "keep"


_TARGETS: dict[str, SmsState] = {
    "delivered": SmsState.DELIVERED,
    "failed": SmsState.FAILED,
    "expired": SmsState.EXPIRED,
}


def sms_state_of(receipt_state: str) -> SmsState | None:
    """The SMS state a receipt moves a row to; None for an interim receipt.

    ``receipt_state`` is a :class:`mailbridge.providers.events.ReceiptState`
    value (``pending``, ``delivered``, ``failed``, ``expired``); anything
    else counts as interim.
    """
    return _TARGETS.get(str(receipt_state))


def decide_receipt(current: SmsState | None, receipt_state: str) -> ReceiptAction:
    """What a receipt does to the row it names (``current`` None: no row carries the id).

    >>> decide_receipt(SmsState.SENT, "delivered")
    <ReceiptAction.APPLY: 'apply'>
    """
    if current is None or current in (SmsState.SCHEDULED, SmsState.SENDING):
        # unknown yet, or its send not recorded: applied when mark_sent records the id
        return ReceiptAction.KEEP
    target = sms_state_of(receipt_state)
    if current is SmsState.SENT:
        return ReceiptAction.RECORD if target is None else ReceiptAction.APPLY
    if current in _FINAL and target is current:
        return ReceiptAction.DUPLICATE
    return ReceiptAction.RECORD


def combine_parts(states: Sequence[str | None]) -> str:
    """The receipt state of an SMS sent as parts, from each part's final state (None:
    none yet): ``failed`` if a part failed, else ``expired`` if one expired, else
    ``delivered`` once all are, else ``pending``."""
    if "failed" in states:
        return "failed"
    if "expired" in states:
        return "expired"
    if states and all(s == "delivered" for s in states):
        return "delivered"
    return "pending"


def receipt_summary(status: str, error_code: str | None, at: datetime) -> str:
    """How ``queue show`` and the not-delivered mail write one receipt: ``UNDELIV err 001 at …``."""
    text = status.strip() or "?"
    if error_code is not None and error_code.strip():
        text += f" err {error_code.strip()}"
    return f"{text} at {at.strftime('%Y-%m-%d %H:%M:%S UTC')}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RowOutcome:
    """One SMS row of a request, as the not-delivered decision sees it."""

    recipient: str
    state: SmsState
    #: The receipt that ended it (``status``/``error_code``), when one did.
    status: str | None = None
    error_code: str | None = None
    #: Whether it ended after ``sent`` (a receipt moved it).
    by_receipt: bool = False


def undelivered_due(rows: Iterable[RowOutcome], *, already_sent: bool) -> bool:
    """Whether the request's not-delivered mail is due now (see the module docstring)."""
    if already_sent:
        return False
    seen = list(rows)
    if not seen:
        return False
    if any(r.state not in FINAL_FAILURES for r in seen):
        return False
    return any(r.by_receipt for r in seen)


def undelivered_body(request_id: str, rows: Sequence[RowOutcome]) -> str:
    """The not-delivered mail's text: the SPEC §2 error line, then one line per number.

    ::

        ERROR = 8 (Message cannot be delivered), ID - 42
        not delivered to +79991234567: failed (UNDELIV err 001)
        not delivered to +79991234568: expired
    """
    lines = [error_line(UNDELIVERED_ERROR, request_id)]
    seen: set[str] = set()
    for row in rows:
        if row.state not in FINAL_FAILURES or row.recipient in seen:
            continue
        seen.add(row.recipient)
        detail = row.state.value
        if row.status:
            why = row.status.strip()
            if row.error_code and row.error_code.strip():
                why += f" err {row.error_code.strip()}"
            detail += f" ({why})"
        lines.append(f"not delivered to {row.recipient}: {detail}")
    return "\n".join(lines)
