"""The aiosmtpd handler: submission rights, mailboxes, and DATA → core → storage → answer.

* ``MAIL``: only clients inside ``trusted_networks`` or logged in with AUTH
  over TLS may submit (``530 5.7.0`` otherwise);
* ``RCPT``: :mod:`mailbridge.core.recipients` says which mailbox an address
  is and whether the transaction takes it (``550 5.1.1``, ``550 5.7.1``,
  ``452 4.5.3``);
* ``DATA``: IP block (4), then :func:`~mailbridge.core.pipeline.process_mail`
  (read, parse, credentials checked in the password pool, request), then ONE
  ``IntakeStore.accept`` and only then ``250 2.0.0 <result line>``; storage
  failure or any unexpected error is a ``451 4.3.0`` with no internals;
* ``AUTH``: :mod:`mailbridge.smtp.auth`.

One canonical log line per mail: event ``mail`` with id, account,
client_ip, mode, n, result and duration_ms.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypedDict

from aiosmtpd.smtp import SMTP

from mailbridge.core.addresses import recipient_problem, sender_problem
from mailbridge.core.answers import error_line, ok_line_all, smtp_reply
from mailbridge.core.capabilities import carried_formats
from mailbridge.core.intake import MailEnvelope, ip_in, normalize_ip
from mailbridge.core.login import LoginVerifier, Verified, verify_login
from mailbridge.core.mail import read_mail
from mailbridge.core.phones import normalize_number
from mailbridge.core.pipeline import MailReader, Outcome, process_all, process_mail, run_now
from mailbridge.core.recipients import (
    INVALID_NUMBER,
    NO_SUCH_MAILBOX,
    Route,
    RouteKind,
    admit_recipient,
    classify_recipient,
    invalid_number_address,
    route_groups,
)
from mailbridge.errors import StorageError
from mailbridge.log import get_logger
from mailbridge.models import Format, MailContent, OnError
from mailbridge.observe import Observer
from mailbridge.settings import Settings
from mailbridge.smtp.auth import AuthChecks, SmtpAuth
from mailbridge.smtp.gate import ConnectionGate
from mailbridge.smtp.passwords import PasswordPool
from mailbridge.smtp.session import SHUTTING_DOWN, HookTable
from mailbridge.storage.base import IntakeStore

__all__ = ["BUILD_IN_THREAD_BYTES", "PARSE_IN_THREAD_BYTES", "MailHandler"]

log = get_logger("mailbridge.smtp")

#: Mails larger than this are parsed in a worker thread, so that one big mail
#: cannot stall the other sessions (measured: see docs/operations.md).
PARSE_IN_THREAD_BYTES = 16 * 1024

#: Mails larger than this go through the whole pipeline in a worker thread (a command
#: of a few hundred numbers; see docs/grammar.md for the stall it avoids).
BUILD_IN_THREAD_BYTES = 4096

_TEMPFAIL = "451 4.3.0 Temporary failure, please try again later"


class _SessionGone(Exception):
    """The client's connection closed before the commit: nothing is stored."""


_AUTH_REQUIRED = "530 5.7.0 Authentication required"


class _CoreArgs(TypedDict):
    """What every call into the core's pipeline gets besides the envelope and routes."""

    settings: Settings
    now: datetime
    formats: frozenset[Format]
    read: MailReader
    verify: LoginVerifier


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MailHandler(HookTable, SmtpAuth):
    """The aiosmtpd handler: mailboxes, submission rights, DATA → storage → answer."""

    def __init__(
        self,
        *,
        settings: Settings,
        storage: IntakeStore,
        gate: ConnectionGate | None = None,
        on_request: Callable[[datetime | None], None] = lambda due: None,
        on_reply: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = _utcnow,
        hash_workers: int = 4,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.gate = gate if gate is not None else ConnectionGate()
        self.observer: Observer = self.gate.observer
        self._on_request = on_request
        self._on_reply = on_reply
        self._clock = clock
        self._passwords = PasswordPool(hash_workers)
        # AUTH from clients that are not trusted yet gets a pool of its own: password
        # guessing queues behind itself, never in front of the mails of trusted senders
        self._auth_passwords = PasswordPool(1)
        self._formats = carried_formats(settings)
        self._trust_cache: dict[str, bool] = {}

    def reload(self, settings: Settings) -> None:
        """Use ``settings`` for the next transactions (sessions stay open)."""
        self.settings = settings
        self._formats = carried_formats(settings)
        self._trust_cache = {}

    def close(self) -> None:
        self._passwords.close()
        self._auth_passwords.close()

    def _refused(self, stage: str, answer: str, session: Any) -> str:
        """``answer``, a refusal at ``stage``, told to the observer first."""
        if type(self.observer) is Observer:  # metrics off: every hook does nothing
            return answer
        self.observer.smtp_refused(stage, int(answer[:3]), normalize_ip(session.peer))
        return answer

    def _observe(self, mode: str, answer: str, fields: Mapping[str, Any]) -> None:
        """Tell the observer how a mail was answered: its result line, or a 451."""
        if type(self.observer) is Observer:  # metrics off: every hook does nothing
            return
        if answer == _TEMPFAIL:
            self.observer.mail_tempfail()
            return
        line = str(fields.get("result", ""))
        code = line[8:].partition(" ")[0] if line.startswith("ERROR = ") else ""
        self.observer.mail(
            mode,
            int(code) if code.isdigit() else None,
            request_id=str(fields.get("id") or ""),
            account=fields.get("account"),
            client_ip=str(fields.get("client_ip", "")),
        )

    def _trusted(self, session: Any) -> bool:
        if session.authenticated:
            return True
        ip = normalize_ip(session.peer)
        trusted = self._trust_cache.get(ip)
        if trusted is None:
            trusted = ip_in(ip, self.settings.smtp.trusted_networks)
            if len(self._trust_cache) >= 4096:
                self._trust_cache.clear()
            self._trust_cache[ip] = trusted
        return trusted

    async def verify(self, login: str, password: str) -> Verified:
        """The account of ``login``/``password`` (the core's rules, this handler's pool)."""
        return await verify_login(
            login, password, settings=self.settings, check=self._passwords.check
        )

    def _core_args(
        self, settings: Settings, now: datetime, read: MailReader, *, here: bool = False
    ) -> _CoreArgs:
        """The pipeline's arguments: this handler's formats and password check (``here``:
        hashing in the calling thread, already a worker thread)."""
        check = self._passwords.check_here if here else self._passwords.check
        args: _CoreArgs = {
            "settings": settings,
            "now": now,
            "formats": self._formats,
            "read": read,
            "verify": partial(verify_login, settings=settings, check=check),
        }
        return args

    async def verify_auth(self, login: str, password: str) -> Verified:
        """As :meth:`verify`, in the AUTH pool."""
        return await verify_login(
            login, password, settings=self.settings, check=self._auth_passwords.check
        )

    async def auth_blocked(self, ip: str) -> bool:
        """Whether ``ip`` is inside an error block (counted as a refused request)."""
        now = self._clock()
        if not await self.storage.ip_blocked(ip, now, self.settings.limits):
            return False
        await self.storage.record_blocked(ip, now)
        return True

    async def auth_failed(self, ip: str) -> bool:
        """Count a failed AUTH towards ``ip``'s block; True when it starts one."""
        return await self.storage.record_ip_error(ip, self._clock(), self.settings.limits)

    # --- aiosmtpd hooks -------------------------------------------------------------

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.gate.closing:
            return self._refused("mail", SHUTTING_DOWN, session)
        if not self._trusted(session):
            return self._refused("mail", _AUTH_REQUIRED, session)
        problem = sender_problem(address, smtputf8=bool(envelope.smtp_utf8))
        if problem is not None:
            return self._refused("mail", problem, session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        settings = self.settings
        if not self._trusted(session):
            return self._refused("rcpt", _AUTH_REQUIRED, session)
        problem = recipient_problem(address, smtputf8=bool(envelope.smtp_utf8))
        if problem is not None:
            return self._refused("rcpt", problem, session)
        region = settings.smtp.default_region
        route = classify_recipient(
            address, settings, normalize=partial(normalize_number, region=region)
        )
        if route is None:
            return self._refused(
                "rcpt",
                INVALID_NUMBER if invalid_number_address(address, settings) else NO_SUCH_MAILBOX,
                session,
            )
        mail_from = "" if envelope.mail_from == "<>" else envelope.mail_from or ""
        answer, add = admit_recipient(route, envelope.routes, mail_from, settings)
        if add:
            envelope.routes.append(route)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        elif not answer.startswith("2"):
            return self._refused("rcpt", answer, session)
        return answer

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        started = time.perf_counter()
        settings = self.settings
        now = self._clock()
        ip = normalize_ip(session.peer)
        routes: list[Route] = envelope.routes
        mode = routes[0].kind if routes else RouteKind.COMMAND
        reject = mode != RouteKind.COMMAND or settings.smtp.on_error == OnError.REJECT
        fields: dict[str, Any] = {"client_ip": ip, "mode": mode.value}
        try:
            answer = await self._data(envelope, routes, settings, now, ip, reject, fields, server)
        except _SessionGone:
            answer = _TEMPFAIL  # nobody reads it: the client sends the mail again
            fields["result"] = "session closed before the commit"
        except StorageError as exc:
            answer = _TEMPFAIL
            fields["result"] = "storage failure"
            fields["error"] = type(exc).__name__
        except Exception:
            log.exception("mail_failed", client_ip=ip, mode=mode.value)
            answer = _TEMPFAIL
            fields["result"] = "internal error"
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        fields["answer"] = answer[:3]
        log.info("mail", **fields)
        self._observe(mode.value, answer, fields)
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
        server: SMTP | None = None,
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
        charset = settings.smtp.default_charset

        async def read(raw: bytes) -> MailContent:
            if len(raw) > PARSE_IN_THREAD_BYTES:
                return await asyncio.to_thread(read_mail, raw, default_charset=charset)
            return read_mail(raw, default_charset=charset)

        if len(route_groups(routes)) > 1:
            return await self._mixed(env, routes, settings, now, read, fields)
        if len(env.raw) > BUILD_IN_THREAD_BYTES:
            # a long command (hundreds of numbers at ≈ 100 µs each) is read, checked and
            # built in a worker thread: the event loop keeps serving the other sessions
            def whole() -> Outcome:
                args = self._core_args(settings, now, read_now, here=True)
                return run_now(process_mail(env, routes, **args))

            async def read_now(raw: bytes) -> MailContent:
                return read_mail(raw, default_charset=charset)

            outcome = await asyncio.to_thread(whole)
        else:
            outcome = await process_mail(env, routes, **self._core_args(settings, now, read))
        intake = outcome.intake
        transport = server.transport if server is not None else None
        if server is not None and (transport is None or transport.is_closing()):
            raise _SessionGone  # a 250 nobody sees would store a mail the client sends again
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

    async def _mixed(
        self,
        env: MailEnvelope,
        routes: list[Route],
        settings: Settings,
        now: datetime,
        read: MailReader,
        fields: dict[str, Any],
    ) -> str:
        """A mail to several kinds of recipient (SPEC §3): every request it makes is stored in
        one transaction, or none is. Any refusal (before storage, or 9/8/3 in it) refuses the
        whole mail in the session, as number and forward mode do; no reply mail is sent."""
        outcomes = await process_all(env, routes, **self._core_args(settings, now, read))
        fields["mode"] = "mixed"
        fields["requests"] = [
            {"mode": o.intake.mode.value, "account": o.intake.account} for o in outcomes
        ]
        refused = next((o.intake for o in outcomes if o.intake.error is not None), None)
        if refused is not None:
            assert refused.error is not None
            line = error_line(refused.error)
            fields.update(id=None, account=refused.account, n=0, result=line)
            if refused.error_detail:
                fields["detail"] = refused.error_detail
            return smtp_reply(line, reject=True, code=refused.error)
        intakes = [o.intake for o in outcomes]
        results = await self.storage.accept_all(
            intakes,
            limits=settings.limits,
            reply_rate_per_hour=settings.reply.reply_rate_per_hour,
            now=now,
        )
        if results[0].error is not None:
            line = error_line(results[0].error)  # rolled back: no request ID was kept
            fields.update(id=None, n=0, result=line)
            return smtp_reply(line, reject=True, code=results[0].error)
        dues = [i.request.due for i in intakes if i.request is not None]
        self._on_request(min(dues) if dues else None)
        if any(r.reply_queued for r in results):
            self._on_reply()
        total = sum(r.sms_count for r in results)
        ids = [r.request_id for r in results]
        line = ok_line_all(total, ids)
        fields.update(id=", ".join(ids), account=None, n=total, result=line)
        fields["requests"] = [
            {"id": r.request_id, "mode": i.mode.value, "account": i.account, "n": r.sms_count}
            for r, i in zip(results, intakes, strict=True)
        ]
        return f"250 2.0.0 {line}"

    async def handle_exception(self, error: Exception) -> str:
        log.error("smtp_exception", error=type(error).__name__)
        return _TEMPFAIL


#: The type check that the handler supplies what its AUTH hooks need (no effect at run time).
_AUTH_CHECKS: type[AuthChecks] = MailHandler
