"""What to do with an SMS, or a reply mail, that was not sent (SPEC §2, §4).

Pure functions; no clock and no randomness of their own: ``now`` and ``rng``
are passed in, so tests decide both.

* :func:`next_step` is the one decision the dispatcher takes after a try did
  not send an SMS: fail over to another provider now, wait for a paused
  provider's breaker to let a probe through, retry after a backoff, or give up
  as ``failed`` / ``expired``. Its table is in the function's docstring; a new
  kind of :class:`Fault` is one more branch there.
* :func:`decide` is its backoff part: retry at a time, or give up as ``failed``
  (the provider refused for good) or ``expired`` (the retry would land after
  the SMS's validity ends).
* :func:`decide_reply` is the reply mailer's: a reply mail that failed is
  tried again after a doubling gap without jitter (one the smarthost refused
  for good with 5xx is dropped by the mailer before it asks).

Backoff is exponential with *full jitter*: the n-th retry waits a uniform
random time in ``[0, min(retry_max_s, 2 * retry_first_s * 2**(n-1))]``, so the
first retry comes on average after ``retry_first_s`` and no gap ever exceeds
``retry_max_s``. A floor of a tenth of ``retry_first_s`` keeps an unlucky draw
from hammering a provider that just failed. A provider's ``Retry-After`` is a
lower bound on the gap (even above ``retry_max_s``: the provider knows best).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbridge.errors import PermanentProviderError, ProviderError, TemporaryProviderError
from mailbridge.models import SmsState
from mailbridge.settings import DeliverySettings

__all__ = [
    "Fault",
    "RetryAction",
    "RetryDecision",
    "backoff_ceiling_s",
    "decide",
    "decide_reply",
    "expires_at",
    "next_step",
    "reply_backoff_s",
]

#: Shortest gap, as a fraction of ``retry_first_s``.
_FLOOR_FRACTION = 0.1


class RetryAction(enum.StrEnum):
    """What to do with the SMS: :func:`decide` returns the last three only."""

    FAILOVER = "failover"  # again now, on another provider of its route
    WAIT = "wait"  # again when a paused provider's breaker lets a probe through
    RETRY = "retry"  # again after the backoff
    FAILED = "failed"
    EXPIRED = "expired"


class Fault(enum.StrEnum):
    """Why a try did not send the SMS."""

    PERMANENT = "permanent"  # the provider refused this SMS for good
    TEMPORARY = "temporary"  # the attempt failed; a later one, or another provider, may not
    CIRCUIT_OPEN = "circuit-open"  # not tried: every provider left on its route is paused
    #: The provider itself is down, not this SMS: its breaker opens; the SMS fails
    #: over, or waits for the breaker within its validity.
    PROVIDER_UNAVAILABLE = "provider-unavailable"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDecision:
    """Send again at ``at`` (failover, wait, retry), or give up with ``state``."""

    action: RetryAction
    at: datetime | None = None  # set for FAILOVER, WAIT and RETRY
    reason: str = ""

    @property
    def state(self) -> SmsState | None:
        """The final row state when giving up, ``None`` for a retry."""
        if self.action is RetryAction.FAILED:
            return SmsState.FAILED
        if self.action is RetryAction.EXPIRED:
            return SmsState.EXPIRED
        return None


def expires_at(first_due: datetime, settings: DeliverySettings) -> datetime:
    """The instant after which an SMS is no longer sent."""
    return first_due + timedelta(seconds=settings.validity_s)


def backoff_ceiling_s(attempt: int, settings: DeliverySettings) -> float:
    """Upper bound of the jittered gap after failed attempt number ``attempt`` (1-based)."""
    exponent = min(max(attempt, 1) - 1, 62)  # 2**62 s is past any validity; avoids overflow
    ceiling = 2.0 * settings.retry_first_s * float(2**exponent)
    return min(settings.retry_max_s, ceiling)


def decide(
    error: ProviderError,
    *,
    attempt: int,
    now: datetime,
    first_due: datetime,
    settings: DeliverySettings,
    rng: Callable[[], float],
) -> RetryDecision:
    """Decide the fate of an SMS whose attempt number ``attempt`` (1-based) failed with ``error``.

    ``rng`` returns a float in ``[0, 1)`` (``random.random``). A permanent
    error fails at once; a temporary one (or any other ``ProviderError``) is
    retried unless ``now`` is past ``first_due + validity_s`` or the retry time
    would be, in which case the SMS expires now.
    """
    if isinstance(error, PermanentProviderError):
        return RetryDecision(action=RetryAction.FAILED, reason=f"permanent: {error}")
    deadline = expires_at(first_due, settings)
    if now > deadline:
        return RetryDecision(action=RetryAction.EXPIRED, reason="validity ended")
    ceiling = backoff_ceiling_s(attempt, settings)
    floor = min(ceiling, settings.retry_first_s * _FLOOR_FRACTION)
    gap = max(floor, rng() * ceiling)
    hint = error.retry_after_s if isinstance(error, TemporaryProviderError) else None
    if hint is not None and hint > gap:
        gap = hint
    at = now + timedelta(seconds=gap)
    if at > deadline:
        return RetryDecision(
            action=RetryAction.EXPIRED, reason=f"next retry ({gap:.0f} s) past validity"
        )
    return RetryDecision(action=RetryAction.RETRY, at=at, reason=f"retry in {gap:.1f} s")


def next_step(
    fault: Fault,
    error: ProviderError,
    *,
    attempt: int,
    now: datetime,
    first_due: datetime,
    settings: DeliverySettings,
    rng: Callable[[], float],
    failover: bool = False,
    reopens_at: datetime | None = None,
    tried: bool = False,
) -> RetryDecision:
    """The fate of an SMS that a try did not send (the dispatcher's one decision).

    ``attempt`` is the 1-based number of this try; ``failover``: another
    provider of the route, not yet tried in this round, would take the SMS
    now; ``reopens_at``: the earliest instant a paused provider of the route
    lets a probe through (``None``: none is paused); ``tried``: this round of
    failover already tried a provider. Within validity means ``at <=
    first_due + validity_s``.

    ====================  =====================================================
    fault                 decision
    ====================  =====================================================
    PERMANENT             FAILED now
    TEMPORARY             FAILOVER now if ``failover`` and within validity,
                          else :func:`decide` (RETRY after the backoff, EXPIRED)
    CIRCUIT_OPEN          WAIT until ``max(reopens_at, now)`` if nothing was
                          tried and that is within validity, else :func:`decide`
    PROVIDER_UNAVAILABLE  FAILOVER now if ``failover`` and within validity,
                          else WAIT until ``reopens_at`` if within validity,
                          else :func:`decide`
    ====================  =====================================================
    """
    if fault is Fault.PERMANENT:
        return RetryDecision(action=RetryAction.FAILED, reason=str(error))
    deadline = expires_at(first_due, settings)
    if fault in (Fault.TEMPORARY, Fault.PROVIDER_UNAVAILABLE) and failover and now <= deadline:
        return RetryDecision(action=RetryAction.FAILOVER, at=now, reason="failover")
    may_wait = fault is Fault.PROVIDER_UNAVAILABLE or (fault is Fault.CIRCUIT_OPEN and not tried)
    if may_wait and reopens_at is not None:
        due = max(reopens_at, now)
        if due <= deadline:
            return RetryDecision(action=RetryAction.WAIT, at=due, reason="circuit open")
    return decide(error, attempt=attempt, now=now, first_due=first_due, settings=settings, rng=rng)


def reply_backoff_s(attempts: int, *, first_s: float, max_s: float) -> float:
    """Gap before the next try of a reply that failed ``attempts`` times (≥1)."""
    exponent = max(attempts - 1, 0)
    return float(min(max_s, first_s * float(1 << min(exponent, 30))))


def decide_reply(
    *, attempt: int, now: datetime, permanent: bool, settings: DeliverySettings
) -> datetime:
    """When to try again a reply mail whose try number ``attempt`` (1-based) failed.

    Always a retry, so the decision is its time (5xx refusals never get here). The gap doubles from
    ``retry_first_s`` up to ``retry_max_s`` (no jitter: one smarthost, one
    sender); a recipient the smarthost refused for good (``permanent``) waits
    ``retry_max_s``, so it does not loop fast.
    """
    if permanent:
        gap = settings.retry_max_s
    else:
        gap = reply_backoff_s(attempt, first_s=settings.retry_first_s, max_s=settings.retry_max_s)
    return now + timedelta(seconds=gap)
