"""Sessions from outside ``trusted_networks`` that have not logged in, and the idle timer.

Such a client can do nothing but STARTTLS and AUTH, so it is held short
(SPEC §2, no backscatter; docs/operations.md):

* a deadline from connect (``[smtp] untrusted_timeout_s``) that no command
  extends: ``NOOP`` every few seconds no longer keeps a slot for ever;
* a budget of commands (``untrusted_command_limit``) before AUTH;
* a share of the sessions of its own (``untrusted_max_connections``, a
  quarter of ``max_connections`` by default): beyond it, ``421`` at connect,
  so trusted senders always find a slot;
* when the gateway offers no TLS (so AUTH is impossible), the session is
  closed right after its ``530``.

Logging in lifts all of it. Separately, aiosmtpd's idle timer is stopped
while the gateway itself works on a mail (the DATA hook): a slow commit no
longer makes aiosmtpd close a session whose mail is then stored without its
client seeing the ``250``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any

__all__ = ["UNTRUSTED_DEADLINE", "UNTRUSTED_TOO_MANY", "UntrustedPolicy", "UntrustedShare"]

UNTRUSTED_DEADLINE = b"421 4.7.0 Log in sooner: closing this session\r\n"
UNTRUSTED_BUDGET = b"421 4.7.0 Too many commands before logging in, closing\r\n"
UNTRUSTED_TOO_MANY = b"421 4.7.0 Too many connections from untrusted clients, try again later\r\n"
NO_WAY_IN = b"421 4.7.0 Submission needs a trusted network or AUTH over TLS, closing\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class UntrustedPolicy:
    """What an untrusted, unauthenticated session may do."""

    trusted_networks: tuple[IPv4Network | IPv6Network, ...]
    timeout_s: float
    command_limit: int
    share: int
    can_authenticate: bool  # TLS offered: AUTH possible


class UntrustedShare:
    """How many untrusted, unauthenticated sessions are open (one per process)."""

    def __init__(self) -> None:
        self.open = 0

    def admit(self, share: int) -> bool:
        if self.open >= share:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open = max(0, self.open - 1)


class UntrustedSession:
    """Mixed into the aiosmtpd session class (before ``SMTP``): the rules above."""

    transport: Any
    session: Any
    loop: asyncio.AbstractEventLoop
    _timeout_handle: asyncio.TimerHandle | None

    def _untrusted_init(self, policy: UntrustedPolicy | None, share: UntrustedShare) -> None:
        self._policy = policy
        self._share = share
        self._untrusted = False
        self._commands_left = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._in_handler = False

    def _untrusted_admit(self, transport: asyncio.BaseTransport, trusted: bool) -> bool:
        """At connect: False when the session must be refused (the untrusted share is full)."""
        policy = self._policy
        if policy is None or trusted:
            return True
        if not self._share.admit(policy.share):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(UNTRUSTED_TOO_MANY)
            transport.close()
            return False
        self._untrusted = True
        self._commands_left = policy.command_limit
        self._deadline = asyncio.get_running_loop().call_later(
            policy.timeout_s, self._untrusted_close, UNTRUSTED_DEADLINE
        )
        return True

    def _untrusted_close(self, line: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(Exception):
            transport.write(line)
        transport.close()

    def _untrusted_done(self) -> None:
        """Logged in, or gone: out of the untrusted share, no deadline."""
        if self._untrusted:
            self._untrusted = False
            self._share.release()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _untrusted_command(self) -> None:
        """One more command of an untrusted session (called as aiosmtpd resets its timer)."""
        if not self._untrusted:
            return
        if self.session is not None and self.session.authenticated:
            self._untrusted_done()
            return
        self._commands_left -= 1
        if self._commands_left < 0:
            self._untrusted_close(UNTRUSTED_BUDGET)

    def _untrusted_refused(self) -> None:
        """After a ``530``: with no way to log in, the session is of no use."""
        policy = self._policy
        if self._untrusted and policy is not None and not policy.can_authenticate:
            self._untrusted_close(NO_WAY_IN)
