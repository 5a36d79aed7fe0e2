"""What to do with an SMS after a provider failed to take it (SPEC §4).

A pure function of (error, attempt, now): retry at a time, or give up as
``failed`` (the provider refused for good) or ``expired`` (the retry would
land after the SMS's validity ends). No clock and no randomness of its own:
``now`` and ``rng`` are passed in, so tests decide both.

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

__all__ = ["RetryAction", "RetryDecision", "backoff_ceiling_s", "decide", "expires_at"]

#: Shortest gap, as a fraction of ``retry_first_s``.
_FLOOR_FRACTION = 0.1


class RetryAction(enum.StrEnum):
    """The three outcomes of :func:`decide`."""

    RETRY = "retry"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDecision:
    """Retry at ``at``, or give up with ``state`` (``failed`` / ``expired``)."""

    action: RetryAction
    at: datetime | None = None  # set only for RETRY
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
