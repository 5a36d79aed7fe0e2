"""A token bucket for a provider's ``rate_per_s`` (SPEC §4, §5).

Pure state: the caller passes the time (monotonic seconds) to every call and
does the waiting itself (the dispatcher sleeps for the returned delay). Tokens
count SMS (recipients), refill at ``rate`` per second, and the bucket holds at
most one second's worth (at least one token), so a rested provider gets a
burst of ``rate`` at most. A batch larger than the bucket may go once the
bucket is full, leaving it in debt: the long-run rate still holds.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, ``capacity`` at most; ``rate <= 0`` means unlimited."""

    __slots__ = ("_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, *, now: float, capacity: float | None = None) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._stamp = now

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (negative while in debt)."""
        self._refill(now)
        return self._tokens

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens if available and return 0.0; else take none and return the wait.

        The wait is the seconds after which the same call would succeed,
        if nobody else takes tokens meanwhile.
        """
        if self.unlimited:
            return 0.0
        self._refill(now)
        need = min(n, self.capacity)
        if self._tokens >= need:
            self._tokens -= n
            return 0.0
        return (need - self._tokens) / self.rate

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = max(self._stamp, now)
