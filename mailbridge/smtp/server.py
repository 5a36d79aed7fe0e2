"""The SMTP side of the gateway: aiosmtpd as the shell, our handler inside (SPEC §2–3).

:class:`SmtpServer` opens one listening socket per ``[smtp] listen`` entry
with ``loop.create_server`` and a factory that builds one
``aiosmtpd.smtp.SMTP`` per connection (no ``Controller``: several listeners,
IPv4 and IPv6, connection caps and a drain on shutdown). The factory refuses
a connection over ``max_connections`` or ``max_connections_per_ip`` with
``421`` before any SMTP state is built.

:class:`MailHandler` is the aiosmtpd handler:

* ``MAIL``: only clients inside ``trusted_networks`` or logged in with AUTH
  over TLS may submit (``530 5.7.0`` otherwise);
* ``RCPT``: the command mailbox, ``[[forward]]`` aliases and number addresses
  are the only mailboxes (``550 5.1.1``); forward and number addresses also
  check the envelope sender (``550 5.7.1``);
* ``DATA``: IP block (4), parse, credentials (checked in a worker thread,
  constant time, cached), request, then ONE ``Storage.accept`` and only then
  ``250 2.0.0 <result line>``; storage failure or any unexpected error is a
  ``451 4.3.0`` with no internals;
* ``AUTH PLAIN``/``LOGIN`` (TLS only) against the accounts' password hashes.

One canonical log line per mail: event ``mail`` with id, account,
client_ip, mode, n, result and duration_ms.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import re
import ssl
import time
from base64 import b64decode
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope

from mailbridge.core import intake as intake_mod
from mailbridge.core.answers import error_line, smtp_reply
from mailbridge.core.capabilities import carried_formats
from mailbridge.core.grammar import parse_command
from mailbridge.core.intake import MailEnvelope, Route, RouteKind
from mailbridge.core.mail import read_mail
from mailbridge.core.passwords import DUMMY_HASH, VerifiedCache, verify_password
from mailbridge.core.phones import normalize_number
from mailbridge.core.request import build_request
from mailbridge.errors import RequestError, StorageError
from mailbridge.log import get_logger
from mailbridge.models import Command, MailContent, SmsRequest
from mailbridge.settings import Account, Settings
from mailbridge.smtp.refusals import RefusalLog
from mailbridge.smtp.txlimits import count_per_transaction
from mailbridge.storage.base import Intake, Storage

__all__ = [
    "PARSE_IN_THREAD_BYTES",
    "ConnectionGate",
    "MailHandler",
    "SmtpServer",
    "make_tls_context",
    "parse_listen",
    "simple_address",
]

log = get_logger("mailbridge.smtp")

#: Mails larger than this are parsed in a worker thread, so that one big mail
#: cannot stall the other sessions (measured: see docs/operations.md).
PARSE_IN_THREAD_BYTES = 16 * 1024

#: Most number addresses in one mail.
MAX_NUMBER_RCPTS = 50

_TEMPFAIL = "451 4.3.0 Temporary failure, please try again later"
_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
_TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parse_listen(entry: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → (host, port)."""
    text = entry.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address needs host:port: {entry!r}")
    return host, int(port)


def make_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 at least) from PEM files."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class _Envelope(Envelope):
    """aiosmtpd's envelope plus the mailboxes its recipients name."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []


class ConnectionGate:
    """Counts open sessions (overall and per IP) and sessions inside DATA."""

    def __init__(self) -> None:
        self.sessions: set[_Session] = set()
        self.per_ip: dict[str, int] = {}
        self.in_data = 0
        self.closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    def admit(self, session: _Session, ip: str, *, total: int, per_ip: int) -> bool:
        if self.closing:
            return False
        if len(self.sessions) >= total or self.per_ip.get(ip, 0) >= per_ip:
            return False
        self.sessions.add(session)
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        return True

    def release(self, session: _Session, ip: str) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
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


_HOOK_PREFIXES = ("smtp_", "auth_", "handle_")


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


def _hook_names(cls: type) -> list[str]:
    """The names aiosmtpd looks up by prefix on a protocol or handler, computed once per class."""
    cached: list[str] | None = cls.__dict__.get("_hook_names_cache")
    if cached is None:
        cached = [n for n in object.__dir__(cls) if n.startswith(_HOOK_PREFIXES)]
        cached += [n for k in cls.__mro__ for n in vars(k) if n.startswith(_HOOK_PREFIXES)]
        cached = sorted(set(cached))
        type.__setattr__(cls, "_hook_names_cache", cached)
    return cached


class _Session(SMTP):
    """One SMTP connection: aiosmtpd's protocol with the gate in front.

    aiosmtpd builds its command and AUTH tables per connection with
    ``dir()``/``inspect.getmembers()`` over every attribute (≈ 0.3 ms a
    connection, measured); ``__dir__`` here lists only the hook methods it
    looks for, computed once per class.
    """

    def __dir__(self) -> list[str]:
        return _hook_names(type(self))

    def __init__(
        self,
        gate: ConnectionGate,
        limits: tuple[int, int],
        refusals: RefusalLog | None = None,
        **kwargs: Any,
    ) -> None:
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

    def _create_envelope(self) -> _Envelope:
        return _Envelope()

    def _over_limit(self, verb: str) -> None:
        log.warning("smtp_command_limit", client_ip=self._ip, command=verb)

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        if text[:1] in ("4", "5") and self._refusals is not None:
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
            self._ip = intake_mod.normalize_ip(transport.get_extra_info("peername"))
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
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._gate.release(self, self._ip)
        super().connection_lost(error)

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
                transport.write(_SHUTTING_DOWN.encode("ascii") + b"\r\n")
        transport.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Verified:
    account: Account | None
    login_known: bool


class MailHandler:
    """The aiosmtpd handler: mailboxes, submission rights, DATA → storage → answer."""

    def __dir__(self) -> list[str]:  # see _Session.__dir__
        return _hook_names(type(self))

    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        gate: ConnectionGate | None = None,
        on_request: Callable[[datetime | None], None] = lambda due: None,
        on_reply: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = _utcnow,
        hash_workers: int = 4,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.gate = gate if gate is not None else ConnectionGate()
        self._on_request = on_request
        self._on_reply = on_reply
        self._clock = clock
        self._cache = VerifiedCache()
        self._formats = carried_formats(settings)
        self._trust_cache: dict[str, bool] = {}
        self._hash_pool = ThreadPoolExecutor(
            max_workers=hash_workers, thread_name_prefix="mailbridge-hash"
        )

    def reload(self, settings: Settings) -> None:
        """Use ``settings`` for the next transactions (sessions stay open)."""
        self.settings = settings
        self._formats = carried_formats(settings)
        self._trust_cache = {}

    def close(self) -> None:
        self._hash_pool.shutdown(wait=False, cancel_futures=True)

    # --- helpers ------------------------------------------------------------------

    def _trusted(self, session: Any) -> bool:
        if session.authenticated:
            return True
        ip = intake_mod.normalize_ip(session.peer)
        trusted = self._trust_cache.get(ip)
        if trusted is None:
            trusted = intake_mod.ip_in(ip, self.settings.smtp.trusted_networks)
            if len(self._trust_cache) >= 4096:
                self._trust_cache.clear()
            self._trust_cache[ip] = trusted
        return trusted

    async def _check(self, pairs: Sequence[tuple[str, str, str]]) -> int | None:
        """Index of the first (key, password, stored) that matches, checking all of them.

        Cached credentials answer at once; the rest run scrypt in the hash pool,
        every one of them (no early exit), so timing does not tell which failed.
        """
        for i, (key, password, stored) in enumerate(pairs):
            if self._cache.check(key, password, stored):
                return i

        def run() -> list[bool]:
            return [verify_password(password, stored) for _, password, stored in pairs]

        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._hash_pool, run)
        for i, ok in enumerate(results):
            if ok:
                key, password, stored = pairs[i]
                self._cache.remember(key, password, stored)
                return i
        return None

    async def _verify_login(self, login: str, password: str, settings: Settings) -> _Verified:
        login = login.strip()
        if not login:
            keyed = [a for a in settings.accounts if a.apikey_hash]
            pairs = [(f"apikey:{a.login}", password, a.apikey_hash or "") for a in keyed]
            if not pairs:
                pairs = [("apikey:", password, DUMMY_HASH)]
                keyed = []
            hit = await self._check(pairs)
            if hit is None or not keyed:
                return _Verified(account=None, login_known=False)
            return _Verified(account=keyed[hit], login_known=True)
        account = settings.account(login)
        stored = account.password_hash if account is not None else None
        if account is None or not stored or not password:
            await self._check([("dummy:", password, DUMMY_HASH)])
            return _Verified(account=None, login_known=account is not None)
        hit = await self._check([(login, password, stored)])
        return _Verified(account=account if hit is not None else None, login_known=True)

    async def _read(self, raw: bytes, settings: Settings) -> MailContent:
        charset = settings.smtp.default_charset
        if len(raw) > PARSE_IN_THREAD_BYTES:
            return await asyncio.to_thread(read_mail, raw, default_charset=charset)
        return read_mail(raw, default_charset=charset)

    def _builder(
        self, settings: Settings, now: datetime
    ) -> Callable[[Command, Account], SmsRequest]:
        region = settings.smtp.default_region
        formats = self._formats

        def build(command: Command, account: Account) -> SmsRequest:
            return build_request(command, account=account, now=now, region=region, formats=formats)

        return build

    async def _intake(
        self, env: MailEnvelope, routes: Sequence[Route], settings: Settings, now: datetime
    ) -> Intake:
        mode = routes[0].kind
        try:
            content = await self._read(env.raw, settings)
        except RequestError as exc:
            return intake_mod.error_intake(
                env,
                mode=mode,
                code=exc.code,
                detail=exc.detail,
                settings=settings,
                content=intake_mod.fallback_content(env.raw),
            )
        build = self._builder(settings, now)
        if mode == RouteKind.COMMAND:
            try:
                command = parse_command(content.command)
            except RequestError as exc:
                return intake_mod.error_intake(
                    env, mode=mode, code=exc.code, detail=exc.detail, settings=settings,
                    content=content,
                )  # fmt: skip
            verified = await self._verify_login(command.login, command.psw, settings)
            return intake_mod.command_intake(
                env,
                settings=settings,
                content=content,
                command=command,
                account=verified.account,
                login_known=verified.login_known,
                build=build,
            )
        if mode == RouteKind.FORWARD:
            alias = routes[0].alias
            assert alias is not None
            account_name, phones = alias.account, list(alias.to)
            template, max_parts, sender = alias.template, alias.max_parts, alias.sender
        else:
            numbers = settings.number_addresses
            account_name = numbers.account
            phones = [r.number for r in routes if r.number]
            template, max_parts, sender = numbers.template, numbers.max_parts, numbers.sender
        account = settings.account(account_name)
        if account is None:  # the config checks this; a reload race is the only way here
            return intake_mod.error_intake(
                env, mode=mode, code=2, detail="account not configured", settings=settings
            )
        text = intake_mod.template_text(
            template, max_parts, content=content, mail_from=env.mail_from
        )
        command = intake_mod.forward_command(
            account=account, phones=phones, text=text, sender=sender or ""
        )
        try:
            request = build(command, account)
        except RequestError as exc:
            return intake_mod.error_intake(
                env,
                mode=mode,
                code=exc.code,
                detail=exc.detail,
                settings=settings,
                account=account.login,
                balance=account.balance,
            )
        return intake_mod.request_intake(
            env,
            mode=mode,
            request=request,
            account=account,
            settings=settings,
        )

    # --- aiosmtpd hooks -------------------------------------------------------------

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.gate.closing:
            return _SHUTTING_DOWN
        if not self._trusted(session):
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        settings = self.settings
        if not self._trusted(session):
            return "530 5.7.0 Authentication required"
        region = settings.smtp.default_region
        route = intake_mod.classify_recipient(
            address, settings, normalize=partial(normalize_number, region=region)
        )
        if route is None:
            return "550 5.1.1 Recipient address rejected: no such mailbox here"
        routes: list[Route] = envelope.routes
        if any(r.address == route.address for r in routes):
            return "250 2.1.5 OK"
        if routes and (
            routes[0].kind != route.kind
            or route.kind != RouteKind.NUMBER
            or len(routes) >= MAX_NUMBER_RCPTS
        ):
            return "452 4.5.3 Too many recipients, send this one in another mail"
        mail_from = "" if envelope.mail_from == "<>" else envelope.mail_from or ""
        if route.kind == RouteKind.FORWARD:
            assert route.alias is not None
            if not intake_mod.sender_allowed(mail_from, route.alias.allowed_senders):
                return "550 5.7.1 Sender not allowed to write to this address"
        elif route.kind == RouteKind.NUMBER and not intake_mod.sender_allowed(
            mail_from, settings.number_addresses.allowed_senders
        ):
            return "550 5.7.1 Sender not allowed to write to number addresses"
        routes.append(route)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        started = time.perf_counter()
        settings = self.settings
        now = self._clock()
        ip = intake_mod.normalize_ip(session.peer)
        routes: list[Route] = envelope.routes
        mode = routes[0].kind if routes else RouteKind.COMMAND
        reject = mode != RouteKind.COMMAND or settings.smtp.on_error == "reject"
        fields: dict[str, Any] = {"client_ip": ip, "mode": mode}
        try:
            answer = await self._data(envelope, routes, settings, now, ip, reject, fields)
        except StorageError as exc:
            answer = _TEMPFAIL
            fields["result"] = "storage failure"
            fields["error"] = type(exc).__name__
        except Exception:
            log.exception("mail_failed", client_ip=ip, mode=mode)
            answer = _TEMPFAIL
            fields["result"] = "internal error"
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        fields["answer"] = answer[:3]
        log.info("mail", **fields)
        return answer

    async def _data(
        self,
        envelope: Any,
        routes: list[Route],
        settings: Settings,
        now: datetime,
        ip: str,
        reject: bool,
        fields: dict[str, Any],
    ) -> str:
        storage = self.storage
        if await storage.ip_blocked(ip, now, settings.limits):
            await storage.record_blocked(ip, now)
            line = error_line(4)
            fields.update(id=None, account=None, n=0, result=line)
            return smtp_reply(line, reject=reject, code=4)
        mail_from = "" if envelope.mail_from == "<>" else (envelope.mail_from or "")
        env = MailEnvelope(
            received_at=now,
            client_ip=ip,
            mail_from=mail_from,
            rcpt_to=tuple(envelope.rcpt_tos),
            raw=envelope.original_content or b"",
        )
        intake = await self._intake(env, routes, settings, now)
        result = await storage.accept(
            intake,
            limits=settings.limits,
            reply_rate_per_hour=settings.reply.reply_rate_per_hour,
            now=now,
        )
        if result.error is None:
            self._on_request(intake.request.due if intake.request is not None else None)
        if result.reply_queued:
            self._on_reply()
        fields.update(
            id=result.request_id,
            account=intake.account,
            n=result.sms_count,
            result=result.line,
        )
        if intake.error_detail:
            fields["detail"] = intake.error_detail
        return smtp_reply(result.line, reject=reject, code=result.error)

    async def handle_exception(self, error: Exception) -> str:
        log.error("smtp_exception", error=type(error).__name__)
        return _TEMPFAIL

    # --- AUTH (only offered over TLS: auth_require_tls) -----------------------------

    async def _auth(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        try:
            name, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        if not name:
            return AuthResult(success=False, handled=False)
        verified = await self._verify_login(name, secret, self.settings)
        if verified.account is None:
            peer = server.session.peer if server.session is not None else None
            log.info("auth_failed", client_ip=intake_mod.normalize_ip(peer))
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


class SmtpServer:
    """The listeners: one ``asyncio.Server`` per ``[smtp] listen`` entry."""

    def __init__(
        self,
        handler: MailHandler,
        settings: Settings,
        *,
        listen: Sequence[str] | None = None,
        reuse_port: bool = False,
    ) -> None:
        """``listen`` replaces ``[smtp] listen`` (a worker gets the addresses its parent bound);
        ``reuse_port``: bind with ``SO_REUSEPORT``, sharing each address with other processes.
        """
        self.handler = handler
        self.gate = handler.gate
        self.refusals = RefusalLog()
        self._settings = settings
        self._listen = tuple(listen) if listen is not None else None
        self._reuse_port = reuse_port
        self._tls = self.make_tls(settings)
        self._servers: list[asyncio.base_events.Server] = []

    @staticmethod
    def make_tls(settings: Settings) -> ssl.SSLContext | None:
        """The TLS context of ``settings`` (None without ``tls_cert``/``tls_key``)."""
        smtp = settings.smtp
        if smtp.tls_cert and smtp.tls_key:
            return make_tls_context(smtp.tls_cert, smtp.tls_key)
        return None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket (the real port when 0 was asked)."""
        out: list[tuple[str, int]] = []
        for server in self._servers:
            for sock in server.sockets:
                name = sock.getsockname()
                out.append((str(name[0]), int(name[1])))
        return out

    def _factory(self) -> _Session:
        smtp = self._settings.smtp
        return _Session(
            self.gate,
            (smtp.max_connections, smtp.max_connections_per_ip),
            self.refusals,
            handler=self.handler,
            data_size_limit=smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=smtp.hostname,
            ident=smtp.ident,
            tls_context=self._tls,
            require_starttls=bool(self._tls is not None and smtp.require_starttls),
            timeout=smtp.timeout_s,
            auth_require_tls=True,
            command_call_limit=smtp.command_call_limit,
        )

    async def start(self) -> None:
        """Open every listener (raises OSError when an address cannot be bound)."""
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        try:
            for entry in self._listen or self._settings.smtp.listen:
                host, port = parse_listen(entry)
                server = await loop.create_server(
                    self._factory,
                    host or None,
                    port,
                    reuse_address=True,
                    reuse_port=self._reuse_port or None,
                    backlog=512,
                )
                self._servers.append(server)
        except BaseException:
            await self.close_listeners()
            raise
        log.info("smtp_listening", addresses=[f"{h}:{p}" for h, p in self.addresses])

    def reload(self, settings: Settings, tls: ssl.SSLContext | None) -> None:
        """New limits, TLS context and mailboxes; listen addresses need a restart."""
        if settings.smtp.listen != self._settings.smtp.listen:
            log.warning("reload_listen_ignored", reason="listen addresses change on restart")
        self._tls = tls
        self._settings = settings
        self.handler.reload(settings)

    async def close_listeners(self) -> None:
        """Stop accepting connections; open sessions go on."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        self.gate.closing = True

    async def drain(self, timeout_s: float) -> bool:
        """Stop accepting, let sessions inside DATA finish (up to ``timeout_s``), close the rest.

        Returns False when some session was still in DATA at the deadline.
        """
        await self.close_listeners()
        done = await self.gate.wait_data_done(timeout_s)
        for session in list(self.gate.sessions):
            session.shutdown()
        await asyncio.sleep(0)
        return done
