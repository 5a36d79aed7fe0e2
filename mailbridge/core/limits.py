"""The limit decisions of SPEC §2, as pure functions over plain state values.

Storage keeps the state (when identical requests were accepted, each number's
flood streak, the IP errors, what an account was charged, how many replies a
recipient got) and asks these functions what to do; the caller always passes
``now``. The order inside the storage transaction is duplicates (9), flood (8),
balance (3): :func:`decide_request`.

Decisions where the SPEC is silent:

* duplicates: only *accepted* requests count; a refused one is not remembered,
  so a sender that keeps retrying gets through once the window has passed.
  "Within the window" is ``now - window < at <= now``.
* flood: a streak counts SMS rows (one message to one number), not parts; a
  request is checked at intake time, and a refused request leaves the streaks
  as they were. A request with several messages to one number counts each.
* IP block: the block runs ``error_block_for_s`` from the error that set it;
  requests refused with 4 are not counted and do not extend it.
* replies: at most ``reply_rate_per_hour`` per recipient within the last hour.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbridge.core.timespec import TimeSpec
from mailbridge.models import SmsRequest
from mailbridge.settings import LimitsSettings

__all__ = [
    "IP_ERROR_CODES",
    "REPLY_RATE_WINDOW",
    "FloodState",
    "RequestDecision",
    "available_balance",
    "balance_refused",
    "block_until_after_error",
    "canonical_time",
    "counts_as_ip_error",
    "decide_request",
    "duplicate_refused",
    "flood_plan",
    "flood_step",
    "ip_blocked",
    "reply_allowed",
    "request_fingerprint",
    "since",
]

#: Errors that count towards an IP block (SPEC §2).
IP_ERROR_CODES: frozenset[int] = frozenset({1, 2, 5, 7})

#: The window of ``reply_rate_per_hour``.
REPLY_RATE_WINDOW = timedelta(hours=1)


def since(now: datetime, seconds: float) -> datetime:
    """Start of a sliding window of ``seconds`` ending at ``now`` (exclusive bound)."""
    return now - timedelta(seconds=seconds)


# --- duplicates (9) -------------------------------------------------------------


def canonical_time(time_spec: str) -> str:
    """The time of a request as the duplicate key sees it (:attr:`TimeSpec.key`).

    ``time_spec`` is the ``<time>,<tz>`` field as written (``<tz>`` optional).
    """
    return TimeSpec.read(time_spec).key


def request_fingerprint(
    request: SmsRequest, *, time_spec: str | None = None, when: TimeSpec | None = None
) -> str:
    """The duplicate key of ``request``: sha256 hex over what SPEC §2 (ERROR = 9) names.

    Covers the account, each message's text and recipients (after expansion),
    sender, format, translit, the subject/voice/param parameters and the
    time. Headers and Message-ID never enter it. The time is the key of
    ``when`` (the command's parsed ``<time>,<tz>``) or :func:`canonical_time`
    of ``time_spec`` when given; without either, the due
    instant floored to the minute (an immediate request then matches only
    within the same minute, so callers should pass ``time_spec``).
    """
    if when is not None:
        time = when.key
    elif time_spec is not None:
        time = canonical_time(time_spec)
    else:
        time = request.due.replace(second=0, microsecond=0).isoformat()
    key = {
        "account": request.account,
        "messages": [[m.text, list(m.recipients)] for m in request.messages],
        "sender": request.sender,
        "format": int(request.format),
        "translit": request.translit,
        "time": time,
        "subject": request.subject,
        "voice": request.voice,
        "param": request.param,
        "bot": request.bot,
    }
    blob = json.dumps(key, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def duplicate_refused(accepted_in_window: int, limits: LimitsSettings) -> bool:
    """Whether one more identical request is refused with 9.

    ``accepted_in_window`` counts identical requests accepted within
    ``duplicate_window_s`` before this one; with ``duplicate_max = 2`` the
    third is refused.
    """
    return accepted_in_window >= limits.duplicate_max


# --- flood (8) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FloodState:
    """One number's flood streak: its last SMS and how many came each < gap after the previous."""

    last_at: datetime
    streak: int


def flood_step(state: FloodState | None, now: datetime, limits: LimitsSettings) -> FloodState:
    """The state after one more SMS to the number at ``now``.

    The streak starts again at 1 when the gap since the last SMS is at least
    ``flood_gap_s`` (or there was none).
    """
    if state is None or (now - state.last_at).total_seconds() >= limits.flood_gap_s:
        return FloodState(last_at=now, streak=1)
    return FloodState(last_at=now, streak=state.streak + 1)


def flood_plan(
    recipients: Sequence[str],
    states: Mapping[str, FloodState | None],
    now: datetime,
    limits: LimitsSettings,
) -> dict[str, FloodState] | None:
    """The new states of the numbers of one request, or None when it breaks the flood rule.

    ``recipients`` lists one entry per SMS row (a number repeats when several
    messages go to it); ``states`` holds the current state of each number
    (missing or None: no recent SMS). The ``flood_max + 1``-th SMS of a
    streak is refused.
    """
    new: dict[str, FloodState] = {}
    for number in recipients:
        current = new[number] if number in new else states.get(number)
        step = flood_step(current, now, limits)
        if step.streak > limits.flood_max:
            return None
        new[number] = step
    return new


# --- balance (3) ----------------------------------------------------------------


def available_balance(balance: int | None, charged: int) -> int | None:
    """Parts the account may still send (None: unlimited). May be negative after a reload."""
    if balance is None:
        return None
    return balance - charged


def balance_refused(n: int, *, balance: int | None, charged: int) -> bool:
    """Whether a request of ``n`` parts is refused with 3."""
    available = available_balance(balance, charged)
    return available is not None and n > available


# --- the storage-level decision -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestDecision:
    """What :func:`decide_request` found: ``error`` None (accepted) and the new flood states."""

    error: int | None
    flood: Mapping[str, FloodState]


def decide_request(
    *,
    n: int,
    recipients: Sequence[str],
    duplicates: int,
    flood: Mapping[str, FloodState | None],
    balance: int | None,
    charged: int,
    now: datetime,
    limits: LimitsSettings,
) -> RequestDecision:
    """Duplicates (9), then flood (8), then balance (3), for a request of ``n`` parts.

    ``recipients`` has one entry per SMS row; ``duplicates`` is the count of
    identical requests accepted within the window.
    """
    if duplicate_refused(duplicates, limits):
        return RequestDecision(error=9, flood={})
    new_flood = flood_plan(recipients, flood, now, limits)
    if new_flood is None:
        return RequestDecision(error=8, flood={})
    if balance_refused(n, balance=balance, charged=charged):
        return RequestDecision(error=3, flood={})
    return RequestDecision(error=None, flood=new_flood)


# --- IP block (4) ---------------------------------------------------------------


def counts_as_ip_error(code: int | None) -> bool:
    """Whether a request answered with ``code`` counts towards its IP's block."""
    return code in IP_ERROR_CODES


def block_until_after_error(
    previous: Sequence[datetime], now: datetime, limits: LimitsSettings
) -> datetime | None:
    """When one more counted error at ``now`` blocks the IP: the end of the block, else None.

    ``previous`` holds the IP's earlier counted errors (older ones are ignored:
    only those after ``now - error_block_window_s`` count, this one included).
    """
    start = since(now, limits.error_block_window_s)
    count = 1 + sum(1 for at in previous if start < at <= now)
    if count >= limits.error_block_after:
        return now + timedelta(seconds=limits.error_block_for_s)
    return None


def ip_blocked(until: datetime | None, now: datetime) -> bool:
    """Whether a block ending at ``until`` still holds at ``now``."""
    return until is not None and now < until


# --- replies --------------------------------------------------------------------


def reply_allowed(sent_in_last_hour: int, rate_per_hour: int) -> bool:
    """Whether one more reply may go to a recipient that got ``sent_in_last_hour`` already."""
    return sent_in_last_hour < rate_per_hour
