"""SMTP AUTH PLAIN and LOGIN (offered over TLS only: ``auth_require_tls``).

aiosmtpd finds ``auth_<MECHANISM>`` methods on the handler;
:class:`SmtpAuth` provides them for :class:`~mailbridge.smtp.handler.MailHandler`,
which supplies :meth:`SmtpAuth.verify` (the core's login rules over its
password pool). The AUTH identity is the account's login.
"""

from __future__ import annotations

import binascii
from base64 import b64decode

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from mailbridge.core.intake import normalize_ip
from mailbridge.core.login import Verified
from mailbridge.log import get_logger
from mailbridge.observe import NULL_OBSERVER, Observer

__all__ = ["AUTH_BLOCKED", "SmtpAuth"]

log = get_logger("mailbridge.smtp")


#: AUTH from an IP inside an error block (SPEC §2, ERROR = 4): temporary, as the block is.
AUTH_BLOCKED = "454 4.7.0 Too many errors from this address, try again later"


class SmtpAuth:
    """The ``auth_PLAIN``/``auth_LOGIN`` hooks over :meth:`verify_auth`.

    AUTH is part of the IP block of SPEC §2: an IP inside a block gets
    :data:`AUTH_BLOCKED` whatever the password, and each failed AUTH counts
    towards the block as a mail answered ``ERROR = 2`` does.
    """

    observer: Observer = NULL_OBSERVER  # told each refused login

    async def verify_auth(self, login: str, password: str) -> Verified:
        raise NotImplementedError

    async def auth_blocked(self, ip: str) -> bool:
        raise NotImplementedError

    async def auth_failed(self, ip: str) -> bool:
        raise NotImplementedError

    async def _auth(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        peer = server.session.peer if server.session is not None else None
        ip = normalize_ip(peer)
        if await self.auth_blocked(ip):
            log.info("auth_refused", client_ip=ip, reason="ip blocked")
            self.observer.smtp_refused("auth", 454, ip)
            await server.push(AUTH_BLOCKED)
            return AuthResult(success=False, handled=True)
        try:
            name, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            name, secret = "", ""
        verified = await self.verify_auth(name, secret) if name else None
        if verified is None or verified.account is None:
            blocked = await self.auth_failed(ip)
            log.info("auth_failed", client_ip=ip, blocked=blocked)
            self.observer.smtp_refused("auth", 535, ip)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, handled=False, auth_data=verified.account.login)

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = b64decode(args[1].encode("ascii"), validate=True)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        try:
            _, login, password = blob.split(b"\x00")
        except ValueError:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._auth(server, login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = b64decode(args[1].encode("ascii"), validate=True)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._auth(server, login, password)
