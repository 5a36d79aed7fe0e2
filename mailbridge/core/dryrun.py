"""``mailbridge parse``: what one mail would send and answer, with nothing sent or stored.

It runs the gateway's own pipeline (:func:`~mailbridge.core.pipeline.process_mail`:
read, parse, the account check, build) and prints the decoded command, each
SMS (recipient, text, encoding, parts) and the answer line. The checks that
need stored state (duplicates 9, flood 8, spent balance 3, IP blocks 4) are
not made; a configured ``balance`` is compared with the request alone.

Without a config file the account checks are skipped (any login, any
sender) and the embedded defaults apply (region RU, charset KOI8-R, every
format carried); the report says so.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from mailbridge.core.answers import error_line, ok_line_all
from mailbridge.core.capabilities import carried_formats
from mailbridge.core.intake import MailEnvelope
from mailbridge.core.login import LoginVerifier, Verified, check_now, verify_login
from mailbridge.core.mail import read_mail
from mailbridge.core.phones import normalize_number
from mailbridge.core.pipeline import process_all, run_now
from mailbridge.core.recipients import (
    INVALID_NUMBER,
    NO_SUCH_MAILBOX,
    Route,
    admit_recipient,
    classify_recipient,
    invalid_number_address,
)
from mailbridge.models import Command, Format, MailContent, RouteKind, SmsRequest
from mailbridge.settings import Account, Settings

__all__ = ["DryRun", "dry_run"]

_PLACEHOLDER_ID = "<assigned>"


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRun:
    ok: bool
    line: str  # the answer line the sender would get
    text: str  # the whole printable report


def _verifier(settings: Settings | None) -> LoginVerifier:
    """The gateway's login check; without a config, any login is its own account."""
    if settings is not None:
        return partial(verify_login, settings=settings, check=check_now)

    async def anyone(login: str, password: str) -> Verified:
        return Verified(account=Account(login=login.strip() or "apikey"), login_known=True)

    return anyone


def _describe_command(out: io.StringIO, command: Command) -> None:
    out.write("command:\n")
    out.write(f"  login:    {command.login or '(empty: API key)'}\n")
    out.write(f"  id:       {command.id or '(assigned by the gateway)'}\n")
    out.write(f"  time,tz:  {command.time or '(now)'},{command.tz or '(account)'}\n")
    out.write(
        f"  translit: {command.translit or '0'}  format: {command.format or '0'}"
        f"  sender: {command.sender or '(default)'}  test: {command.test or '0'}\n"
    )
    out.write(f"  mode:     {'list' if command.list_mode else 'single'}\n")


def _describe_request(out: io.StringIO, request: SmsRequest) -> None:
    out.write("request:\n")
    out.write(f"  account:  {request.account}\n")
    out.write(f"  due:      {request.due.isoformat()}\n")
    out.write(f"  format:   {int(request.format)} ({request.format.name.lower()})")
    out.write(f"  sender: {request.sender or '(none)'}\n")
    if request.subject is not None:
        out.write(f"  subject:  {request.subject}\n")
    for i, message in enumerate(request.messages, 1):
        split = message.split
        out.write(
            f"sms {i}: {split.encoding.value}, {split.count} part(s)"
            f" x {len(message.recipients)} recipient(s)\n"
        )
        for recipient in message.recipients:
            out.write(f"  to:   {recipient}\n")
        for j, part in enumerate(split.parts, 1):
            out.write(f"  part {j}: {part!r}\n")


def dry_run(
    raw: bytes,
    *,
    settings: Settings | None,
    client_ip: str,
    now: datetime,
    mail_from: str = "",
    rcpts: Sequence[str] = (),
) -> DryRun:
    """Run the core over ``raw`` and report what the gateway would do.

    ``mail_from`` and ``rcpts`` are the envelope: each recipient gets the RCPT answer the
    gateway would give, and the mail is then taken as the gateway takes it (command, forward
    alias, number addresses, or a mix). Without ``rcpts`` it is a command mail.
    """
    out = io.StringIO()
    base = settings if settings is not None else Settings()
    if settings is None:
        out.write("no config file: account checks skipped, embedded defaults used\n")
    formats = carried_formats(base) if settings is not None else frozenset(Format)
    charset = base.smtp.default_charset

    async def read(data: bytes) -> MailContent:
        return read_mail(data, default_charset=charset)

    routes: list[Route] = []
    refusal = ""
    normalize = partial(normalize_number, region=base.smtp.default_region)
    for address in rcpts:
        route = classify_recipient(address, base, normalize=normalize)
        if route is None:
            answer = INVALID_NUMBER if invalid_number_address(address, base) else NO_SUCH_MAILBOX
        else:
            answer, add = admit_recipient(route, routes, mail_from, base)
            if add:
                routes.append(route)
        if not answer.startswith("2"):
            refusal = answer
        out.write(f"rcpt:     {address}: {answer}\n")
    if rcpts and not routes:
        return DryRun(ok=False, line=refusal, text=out.getvalue())

    env = MailEnvelope(
        received_at=now, client_ip=client_ip, mail_from=mail_from, rcpt_to=tuple(rcpts), raw=raw
    )
    outcomes = run_now(
        process_all(
            env, routes, settings=base, now=now, formats=formats, read=read,
            verify=_verifier(settings),
        )
    )  # fmt: skip
    content = outcomes[0].content
    if content is not None:
        out.write(f"subject:  {content.subject}\ncharset:  {content.charset}\n")
    total, ids = 0, []
    for outcome in outcomes:
        intake = outcome.intake
        if intake.mode != RouteKind.COMMAND or len(outcomes) > 1:
            out.write(f"mode:     {intake.mode.value}\n")
        if outcome.fields is not None:
            _describe_command(out, outcome.fields.command)
        code, detail = intake.error, intake.error_detail
        request = intake.request
        if request is not None:
            _describe_request(out, request)
            if intake.balance is not None and request.sms_count > intake.balance:
                code, detail = 3, "the request alone exceeds the configured balance"
        if code is not None:
            line = error_line(code, intake.client_id or _PLACEHOLDER_ID)
            if detail:
                out.write(f"reason:   {detail}\n")
            out.write(f"answer:   {line}\n")
            return DryRun(ok=False, line=line, text=out.getvalue())
        assert request is not None
        total += request.sms_count
        ids.append(request.client_id or _PLACEHOLDER_ID)
    line = ok_line_all(total, ids)
    out.write(f"answer:   {line}\n")
    return DryRun(ok=True, line=line, text=out.getvalue())
