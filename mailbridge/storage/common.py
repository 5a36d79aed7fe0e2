"""What every storage backend decides alike: the plan of one intake, result lines, rows.

A backend reads an :class:`IntakeSnapshot` of its counters inside its
transaction, asks :func:`plan_intake` what to write, writes it, and builds the
answer with :func:`result_line`. The limit decisions themselves live in
:mod:`mailbridge.core.limits`; this module binds them to the storage records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from mailbridge.core import limits as lim
from mailbridge.core.answers import error_line, ok_line
from mailbridge.core.records import Intake
from mailbridge.models import AttemptOutcome, Encoding, SmsRequest, SmsState
from mailbridge.settings import LimitsSettings

__all__ = [
    "ANSWER_MAX",
    "FOLLOWUP_ERROR",
    "RETRYABLE_STATES",
    "IntakePlan",
    "IntakeSnapshot",
    "SmsDraft",
    "effective_fingerprint",
    "failure_outcome",
    "from_ts",
    "plan_intake",
    "result_line",
    "shorten",
    "sms_drafts",
    "to_ts",
    "validate_intake",
]

#: Longest provider answer kept with an attempt.
ANSWER_MAX = 500

#: The error of the follow-up reply when an SMS answered OK finally fails.
FOLLOWUP_ERROR = 8

#: States an operator's ``queue retry`` puts back to ``scheduled``.
RETRYABLE_STATES: frozenset[SmsState] = frozenset(
    {SmsState.FAILED, SmsState.EXPIRED, SmsState.CANCELLED}
)


def to_ts(moment: datetime) -> float:
    """UTC epoch seconds of an aware ``datetime`` (naive ones are refused)."""
    tz = moment.tzinfo
    if tz is not UTC and (tz is None or moment.utcoffset() is None):
        raise ValueError("storage times must be timezone-aware")
    return moment.timestamp()


def from_ts(value: float) -> datetime:
    """A UTC-aware ``datetime`` from epoch seconds."""
    return datetime.fromtimestamp(value, UTC)


def shorten(text: str, limit: int = ANSWER_MAX) -> str:
    """``text`` cut to ``limit`` characters (a provider answer kept for operators)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_intake(intake: Intake) -> None:
    """Refuse an :class:`Intake` that breaks its own contract (a bug of the caller)."""
    if (intake.request is None) == (intake.error is None):
        raise ValueError("an intake carries exactly one of request and error")
    to_ts(intake.received_at)


def effective_fingerprint(intake: Intake) -> str | None:
    """The duplicate key of the intake's request (computed when the caller left it out)."""
    if intake.request is None:
        return None
    if intake.fingerprint is not None:
        return intake.fingerprint
    request = intake.request
    spec = "" if request.due <= intake.received_at else request.due.isoformat()
    return lim.request_fingerprint(request, time_spec=spec)


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsDraft:
    """One (message, recipient) row of a request, before it has an id."""

    recipient: str
    text: str
    encoding: Encoding
    parts: int


def sms_drafts(request: SmsRequest) -> list[SmsDraft]:
    """The rows of ``request``, in mail order (messages, then recipients)."""
    drafts = []  # a loop: a comprehension would make a function object per intake
    for m in request.messages:
        split = m.split
        for r in m.recipients:
            drafts.append(
                SmsDraft(recipient=r, text=m.text, encoding=split.encoding, parts=split.count)
            )
    return drafts


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeSnapshot:
    """The counters one intake depends on, read inside the backend's transaction.

    * ``duplicates``: identical requests accepted within ``duplicate_window_s``;
    * ``flood``: the state of each number of the request (absent: none);
    * ``charged``: parts charged to the account so far;
    * ``replies_last_hour``: replies queued to the reply recipient within the hour;
    * ``ip_errors``: the client IP's counted errors within ``error_block_window_s``.
    """

    duplicates: int = 0
    flood: Mapping[str, lim.FloodState] | None = None
    charged: int = 0
    replies_last_hour: int = 0
    ip_errors: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakePlan:
    """Everything one intake writes, decided before anything is written."""

    error: int | None  # final SMSC error, None when accepted
    sms_count: int  # n of the answer (0 on error)
    charge: int  # parts added to the account's charge
    flood: Mapping[str, lim.FloodState]  # new flood states to store
    duplicate: str | None  # fingerprint to remember as accepted
    ip_error: bool  # count an error for the client IP
    block_until: datetime | None  # set an IP block ending then
    queue_reply: bool


def plan_intake(
    intake: Intake,
    snapshot: IntakeSnapshot,
    *,
    limits: LimitsSettings,
    reply_rate_per_hour: int,
    now: datetime,
) -> IntakePlan:
    """Decide the final answer of ``intake`` and what it writes (SPEC §2).

    A request already refused before storage keeps its error; an accepted one
    goes through :func:`mailbridge.core.limits.decide_request`. The parts are
    charged only when the account has a configured balance. A reply is queued
    when the mail may get one, the answer is an error or the test flag is 1,
    and the recipient is within ``reply_rate_per_hour``.
    """
    request = intake.request
    error = intake.error
    flood: Mapping[str, lim.FloodState] = {}
    charge = 0
    duplicate = None
    n = 0
    if request is not None:
        decision = lim.decide_request(
            n=request.sms_count,
            recipients=request.recipients,
            duplicates=snapshot.duplicates,
            flood=snapshot.flood or {},
            balance=intake.balance,
            charged=snapshot.charged,
            now=now,
            limits=limits,
        )
        error = decision.error
        if error is None:
            flood = decision.flood
            n = request.sms_count
            charge = n if intake.balance is not None else 0
            duplicate = effective_fingerprint(intake)
    ip_error = lim.counts_as_ip_error(error)
    block_until = lim.block_until_after_error(snapshot.ip_errors, now, limits) if ip_error else None
    queue_reply = (
        intake.reply is not None
        and (error is not None or intake.test == 1)
        and lim.reply_allowed(snapshot.replies_last_hour, reply_rate_per_hour)
    )
    return IntakePlan(
        error=error,
        sms_count=n,
        charge=charge,
        flood=flood,
        duplicate=duplicate,
        ip_error=ip_error,
        block_until=block_until,
        queue_reply=queue_reply,
    )


def failure_outcome(state: SmsState) -> AttemptOutcome:
    """The outcome of the attempt that ended a row: a refusal, or a transient failure
    that ran out of validity (``expired``)."""
    return AttemptOutcome.PERMANENT if state is SmsState.FAILED else AttemptOutcome.TEMPORARY


def result_line(error: int | None, n: int, request_id: str) -> str:
    """The answer line: ``OK - n SMS, ID - id`` or ``ERROR = N (…)[, ID - id]``."""
    if error is None:
        return ok_line(n, request_id)
    return error_line(error, request_id)
