"""The connection gate: open sessions (overall and per IP) and sessions inside DATA."""

from __future__ import annotations

import asyncio
from typing import Protocol

from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.smtp.untrusted import UntrustedShare

__all__ = ["ConnectionGate", "GatedSession"]


class GatedSession(Protocol):
    """What the gate needs of a session: a way to close it on shutdown."""

    def shutdown(self) -> None: ...


class ConnectionGate:
    """Counts open sessions (overall and per IP) and sessions inside DATA."""

    def __init__(self, observer: Observer = NULL_OBSERVER) -> None:
        self.observer = observer  # told each session admitted, refused and ended
        self.untrusted = UntrustedShare()
        self.sessions: set[GatedSession] = set()
        self.per_ip: dict[str, int] = {}
        self.in_data = 0
        self.closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    def admit(self, session: GatedSession, ip: str, *, total: int, per_ip: int) -> bool:
        if self.closing or len(self.sessions) >= total or self.per_ip.get(ip, 0) >= per_ip:
            self.observer.smtp_refused("connect", 421, ip)
            return False
        self.sessions.add(session)
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self.observer.session_opened()
        return True

    def release(self, session: GatedSession, ip: str) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self.observer.session_closed()
            left = self.per_ip.get(ip, 1) - 1
            if left > 0:
                self.per_ip[ip] = left
            else:
                self.per_ip.pop(ip, None)

    def data_started(self) -> None:
        self.in_data += 1
        self._idle.clear()

    def data_ended(self) -> None:
        self.in_data -= 1
        if self.in_data <= 0:
            self.in_data = 0
            self._idle.set()

    async def wait_data_done(self, timeout_s: float) -> bool:
        """Wait until no session is inside DATA; False when ``timeout_s`` ran out first."""
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
