"""SMTP AUTH PLAIN and LOGIN (offered over TLS only: ``auth_require_tls``).

aiosmtpd finds ``auth_<MECHANISM>`` methods on the handler;
:class:`SmtpAuth` provides them for :class:`~mailbridge.smtp.handler.MailHandler`,
which supplies the :class:`AuthChecks` (the core's login rules over its
password pool, the IP block). The AUTH identity is the account's login.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Protocol

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from mailbridge.core.intake import normalize_ip
from mailbridge.core.login import Verified
from mailbridge.log import get_logger
from mailbridge.observe import Observer

__all__ = ["AUTH_BLOCKED", "AuthChecks", "SmtpAuth"]

log = get_logger("mailbridge.smtp")


#: AUTH from an IP inside an error block (SPEC §2, ERROR = 4): temporary, as the block is.
AUTH_BLOCKED = "454 4.7.0 Too many errors from this address, try again later"


class AuthChecks(Protocol):
    """What :class:`SmtpAuth` needs from the handler it is mixed into."""

    observer: Observer  # told each refused login

    async def verify_auth(self, login: str, password: str) -> Verified:
        """The account of ``login``/``password`` (the core's login rules)."""
        ...

    async def auth_blocked(self, ip: str) -> bool:
        """Whether ``ip`` is inside an error block (then counted as a refused request)."""
        ...

    async def auth_failed(self, ip: str) -> bool:
        """Count a failed AUTH towards ``ip``'s block; True when it starts one."""
        ...


class SmtpAuth:
    """The ``auth_PLAIN``/``auth_LOGIN`` hooks of a handler that is :class:`AuthChecks`.

    aiosmtpd looks the hooks up on the handler's class, so this is a mixin; the
    hooks are typed on ``self: AuthChecks`` (``mailbridge.smtp.handler`` states
    for mypy that :class:`~mailbridge.smtp.handler.MailHandler` is one).

    AUTH is part of the IP block of SPEC §2: an IP inside a block gets
    :data:`AUTH_BLOCKED` whatever the password, and each failed AUTH counts
    towards the block as a mail answered ``ERROR = 2`` does.
    """

    async def auth_PLAIN(self: AuthChecks, server: SMTP, args: list[str]) -> AuthResult:
        blob = await _initial_response(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        try:
            _, login, password = blob.split(b"\x00")
        except ValueError:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await _authenticate(self, server, login, password)

    async def auth_LOGIN(self: AuthChecks, server: SMTP, args: list[str]) -> AuthResult:
        login = await _initial_response(server, args, server.AuthLoginUsernameChallenge)
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await _authenticate(self, server, login, password)


async def _initial_response(server: SMTP, args: list[str], challenge: str) -> bytes | None:
    """The mechanism's first value: given with ``AUTH`` (base64), else asked for with
    ``challenge``; None when the client gave up or sent bad base64 (answered ``501``)."""
    if len(args) == 1:
        answer = await server.challenge_auth(challenge)
        return None if answer is MISSING else answer
    try:
        return b64decode(args[1].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        await server.push("501 5.5.2 Can't decode base64")
        return None


async def _authenticate(
    checks: AuthChecks, server: SMTP, login: bytes, password: bytes
) -> AuthResult:
    peer = server.session.peer if server.session is not None else None
    ip = normalize_ip(peer)
    if await checks.auth_blocked(ip):
        log.info("auth_refused", client_ip=ip, reason="ip blocked")
        checks.observer.smtp_refused("auth", 454, ip)
        await server.push(AUTH_BLOCKED)
        return AuthResult(success=False, handled=True)
    try:
        name, secret = login.decode("utf-8"), password.decode("utf-8")
    except UnicodeDecodeError:
        name, secret = "", ""
    verified = await checks.verify_auth(name, secret) if name else None
    if verified is None or verified.account is None:
        blocked = await checks.auth_failed(ip)
        log.info("auth_failed", client_ip=ip, blocked=blocked)
        checks.observer.smtp_refused("auth", 535, ip)
        return AuthResult(success=False, handled=False)
    return AuthResult(success=True, handled=False, auth_data=verified.account.login)
