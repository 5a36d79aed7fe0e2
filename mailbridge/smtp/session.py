"""Every place the gateway overrides aiosmtpd internals, in one module.

aiosmtpd is pinned below its next minor version (pyproject.toml) and
``tests/unit/test_smtp_session.py`` checks, for each override, that the
pinned aiosmtpd still has what the override relies on:

* :meth:`Session._getaddr`: a regex fast path for ``<local@domain>``
  (:func:`simple_address`), aiosmtpd's own parser for anything else;
* :meth:`Session._create_envelope`: envelopes that carry the routes of
  their recipients (:class:`RouteEnvelope`);
* ``__dir__`` (:class:`HookTable`, on the session and on the handler):
  aiosmtpd builds its command and AUTH tables per connection with
  ``dir()``/``inspect.getmembers()`` over every attribute (≈ 0.3 ms a
  connection, measured); ``__dir__`` lists only the hook names it looks for
  (``smtp_``, ``auth_``, ``handle_``), computed once per class;
* ``_smtp_methods`` (:func:`~mailbridge.smtp.txlimits.count_per_transaction`): each
  command counted per mail transaction instead of aiosmtpd's per-session
  ``command_call_limit``, and the command under way kept for the refusal log;
* ``push``: every ``4xx``/``5xx`` sent is logged (:mod:`mailbridge.smtp.refusals`);
* ``connection_made``/``connection_lost``/``eof_received``/``smtp_DATA``:
  the connection gate in front (``421`` over the caps, counts of sessions
  inside DATA for the drain), and :meth:`Session.shutdown`;
* ``_reset_timeout``/``_call_handler_hook``/``smtp_MAIL``: the rules of
  :mod:`mailbridge.smtp.untrusted` (a deadline and a command budget for
  clients that are not trusted yet, closing after a ``530`` that cannot be
  cured) and aiosmtpd's idle timer stopped while the DATA hook runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Coroutine
from ipaddress import IPv4Network, IPv6Network
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope

from mailbridge.core.intake import ip_in, normalize_ip
from mailbridge.core.recipients import Route
from mailbridge.log import get_logger
from mailbridge.smtp.gate import ConnectionGate
from mailbridge.smtp.refusals import RefusalLog
from mailbridge.smtp.txlimits import count_per_transaction
from mailbridge.smtp.untrusted import UntrustedPolicy, UntrustedSession

__all__ = [
    "HOOK_PREFIXES",
    "SHUTTING_DOWN",
    "HookTable",
    "RouteEnvelope",
    "Session",
    "hook_names",
    "simple_address",
]

log = get_logger("mailbridge.smtp")

SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
_TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"
#: The first character of an answer that is logged as a refusal (``push`` gets str or bytes).
_REFUSAL_STARTS: frozenset[str | bytes] = frozenset({"4", "5", b"4", b"5"})

#: The prefixes of the names aiosmtpd looks up on a protocol or handler.
HOOK_PREFIXES = ("smtp_", "auth_", "handle_")

#: ``<dot-atom@dot-atom>`` and the null path ``<>``: what nearly every client sends.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ANGLE_ADDR = re.compile(
    rf"\s*<((?:{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)?)>(?=\s|$)"
)


def simple_address(arg: str, local_part_limit: int) -> tuple[str | None, str | None] | None:
    """aiosmtpd's ``_getaddr`` result for a plain ``<local@domain>``, else None.

    aiosmtpd parses every MAIL/RCPT address with ``email._header_value_parser``
    and defines a ``Protocol`` class per call (≈ 60 µs an address, measured);
    a dot-atom address in angle brackets gives the same result from one regex.
    Anything else (quoted local parts, comments, source routes) returns None
    and takes aiosmtpd's own path.
    """
    match = _SIMPLE_ANGLE_ADDR.match(arg)
    if match is None:
        return None
    addr = match.group(1)
    rest = arg[match.end() :]
    if not addr:  # the null path: aiosmtpd spells it "<>" and keeps the rest as is
        return "<>", rest
    if local_part_limit and len(addr.rpartition("@")[0]) > local_part_limit:
        return None, None
    return addr, rest.lstrip()


@functools.lru_cache(maxsize=4096)
def _trusted(ip: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    """``ip_in``, cached: a client connects again and again from the same address."""
    return ip_in(ip, networks)


def hook_names(cls: type) -> list[str]:
    """The names aiosmtpd looks up by prefix on a protocol or handler, computed once per class."""
    cached: list[str] | None = cls.__dict__.get("_hook_names_cache")
    if cached is None:
        cached = [n for n in object.__dir__(cls) if n.startswith(HOOK_PREFIXES)]
        cached += [n for k in cls.__mro__ for n in vars(k) if n.startswith(HOOK_PREFIXES)]
        cached = sorted(set(cached))
        type.__setattr__(cls, "_hook_names_cache", cached)
    return cached


class HookTable:
    """``dir()`` lists only the hook names aiosmtpd looks for (see the module docstring)."""

    def __dir__(self) -> list[str]:
        return hook_names(type(self))


class RouteEnvelope(Envelope):
    """aiosmtpd's envelope plus the mailboxes its recipients name."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []


class Session(HookTable, UntrustedSession, SMTP):
    """One SMTP connection: aiosmtpd's protocol with the gate in front."""

    def __init__(
        self,
        gate: ConnectionGate,
        limits: tuple[int, int],
        refusals: RefusalLog | None = None,
        untrusted: UntrustedPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        self._untrusted_init(untrusted, gate.untrusted)
        self._in_connection_made = False
        self._mail_refused = False
        per_transaction = kwargs.pop("command_call_limit", None) or None
        super().__init__(command_call_limit=None, **kwargs)
        self.command: tuple[str, str | None] = ("connect", None)
        self.command_envelope: Envelope | None = None
        count_per_transaction(self, per_transaction, self._over_limit)
        self._refusals = refusals
        self._gate = gate
        self._limits = limits
        self._refused = False
        self._ip = ""

    def _create_envelope(self) -> RouteEnvelope:
        return RouteEnvelope()

    def _over_limit(self, verb: str) -> None:
        log.warning("smtp_command_limit", client_ip=self._ip, command=verb)

    def push(self, status: AnyStr) -> Coroutine[Any, Any, None]:
        if self._refusals is not None and status[:1] in _REFUSAL_STARTS:
            return self._push_refusal(status)
        return SMTP.push(self, status)  # no coroutine of its own for the other answers

    async def _push_refusal(self, status: AnyStr) -> None:
        await SMTP.push(self, status)
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        self._log_refusal(text)

    def _log_refusal(self, answer: str) -> None:
        assert self._refusals is not None
        stage, arg = self.command
        envelope = self.command_envelope
        sender = envelope.mail_from if envelope is not None else None
        if stage == "MAIL" and sender is None:
            sender = RefusalLog.address_of(arg)
        rcpts = envelope.rcpt_tos if envelope is not None else []
        self._refusals.refused(
            answer,
            stage=stage,
            client_ip=self._ip,
            sender=sender,
            recipients=RefusalLog.recipients_of(stage, arg, rcpts),
        )

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        fast = simple_address(arg, self.local_part_limit)
        if fast is not None:
            return fast
        result: tuple[str | None, str | None] = super()._getaddr(arg)
        return result

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the first call; a second one follows STARTTLS
            self._ip = normalize_ip(transport.get_extra_info("peername"))
            total, per_ip = self._limits
            if not self._gate.admit(self, self._ip, total=total, per_ip=per_ip):
                self._refused = True
                if self._refusals is not None:
                    self._refusals.refused(
                        _TOO_MANY.decode().strip(), stage="connect", client_ip=self._ip
                    )
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(_TOO_MANY)
                transport.close()
                return
            policy = self._policy
            trusted = policy is None or _trusted(self._ip, policy.trusted_networks)
            if not self._untrusted_admit(transport, trusted):
                self._refused = True
                self._gate.release(self, self._ip)
                return
        self._in_connection_made = True
        try:
            super().connection_made(transport)
        finally:
            self._in_connection_made = False

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._untrusted_done()
        self._gate.release(self, self._ip)
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        if self._in_handler:  # the gateway's own work on a mail is no client idleness
            return
        SMTP._reset_timeout(self, duration)
        if self._untrusted and not self._in_connection_made:
            self._untrusted_command()

    def _call_handler_hook(self, command: str, *args: Any) -> Coroutine[Any, Any, Any]:
        if command == "DATA":
            return self._data_hook(args)
        if command == "MAIL":
            return self._mail_hook(args)
        return SMTP._call_handler_hook(self, command, *args)

    async def _mail_hook(self, args: tuple[Any, ...]) -> Any:
        status = await SMTP._call_handler_hook(self, "MAIL", *args)
        self._mail_refused = isinstance(status, str) and status.startswith("530")
        return status

    async def _data_hook(self, args: tuple[Any, ...]) -> Any:
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._in_handler = True
        try:
            return await SMTP._call_handler_hook(self, "DATA", *args)
        finally:
            self._in_handler = False
            if self.transport is not None and not self.transport.is_closing():
                self._reset_timeout()

    # aiosmtpd's HELP reads the syntax attributes of the method: keep them
    @functools.wraps(SMTP.smtp_MAIL)
    async def smtp_MAIL(self, arg: str) -> None:
        self._mail_refused = False
        await super().smtp_MAIL(arg)
        if self._mail_refused:  # the 530 is out: close when there is no way to log in
            self._untrusted_refused()

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        result: bool | None = super().eof_received()
        return result

    async def smtp_DATA(self, arg: str) -> None:
        self._gate.data_started()
        try:
            await super().smtp_DATA(arg)
        finally:
            self._gate.data_ended()

    def shutdown(self) -> None:
        """Tell an idle client the gateway is going away and close the connection."""
        transport = self.transport
        if transport is None:
            return
        if isinstance(transport, asyncio.WriteTransport):
            with contextlib.suppress(Exception):
                transport.write(SHUTTING_DOWN.encode("ascii") + b"\r\n")
        transport.close()
