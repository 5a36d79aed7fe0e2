"""How many refusal log lines one client IP may cause: a per-IP window, pure (time passed in).

Every refused connection, MAIL, RCPT or DATA is logged with its reason, but a client that
keeps knocking must not fill the disk: each IP may write ``per_window`` lines per
``window_s``; past that its lines are counted, not written, and the first line of its next
window says how many were left out. The table of IPs is bounded (``max_ips``): when full,
the IP seen longest ago is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LineThrottle", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``log``: write this line; ``suppressed``: lines of this IP left out before it."""

    log: bool
    suppressed: int = 0


@dataclass(slots=True)
class _Window:
    start: float
    written: int
    dropped: int


class LineThrottle:
    """Per-IP line budget: ``per_window`` lines every ``window_s`` seconds."""

    def __init__(self, *, per_window: int = 20, window_s: float = 60.0, max_ips: int = 10_000):
        if per_window < 1 or window_s <= 0 or max_ips < 1:
            raise ValueError("per_window and max_ips must be at least 1, window_s positive")
        self.per_window = per_window
        self.window_s = window_s
        self.max_ips = max_ips
        self._ips: OrderedDict[str, _Window] = OrderedDict()

    def check(self, ip: str, now: float) -> Verdict:
        """Whether a line for ``ip`` at ``now`` (seconds, monotonic) is written."""
        window = self._ips.get(ip)
        if window is None or now - window.start >= self.window_s:
            carried = window.dropped if window is not None else 0
            self._ips[ip] = _Window(start=now, written=1, dropped=0)
            self._ips.move_to_end(ip)
            while len(self._ips) > self.max_ips:
                self._ips.popitem(last=False)
            return Verdict(log=True, suppressed=carried)
        self._ips.move_to_end(ip)
        if window.written < self.per_window:
            window.written += 1
            return Verdict(log=True)
        window.dropped += 1
        return Verdict(log=False)

    def __len__(self) -> int:
        return len(self._ips)
