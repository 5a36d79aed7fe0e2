"""``mailbridge parse``: what one mail would send and answer, with nothing sent or stored.

It runs the same core as the gateway — ``read_mail``, ``parse_command``, the
account check and ``build_request`` — and prints the decoded command, each
SMS (recipient, text, encoding, parts) and the answer line. The checks that
need stored state (duplicates 9, flood 8, spent balance 3, IP blocks 4) are
not made; a configured ``balance`` is compared with the request alone.

Without a config file the account checks are skipped (any login, any
sender) and the embedded defaults apply (region RU, charset KOI8-R, every
format carried); the report says so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from mailbridge.core.answers import error_line, ok_line
from mailbridge.core.capabilities import carried_formats
from mailbridge.core.grammar import parse_command
from mailbridge.core.intake import client_id_of, ip_in
from mailbridge.core.mail import read_mail
from mailbridge.core.passwords import verify_password
from mailbridge.core.request import build_request
from mailbridge.errors import RequestError
from mailbridge.models import Command, Format, SmsRequest
from mailbridge.settings import Account, Settings

__all__ = ["DryRun", "dry_run"]

_PLACEHOLDER_ID = "<assigned>"


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRun:
    ok: bool
    line: str  # the answer line the sender would get
    text: str  # the whole printable report


def _account(command: Command, settings: Settings, client_ip: str) -> Account | None:
    login = command.login.strip()
    if not login:
        for keyed in settings.accounts:
            if keyed.apikey_hash and verify_password(command.psw, keyed.apikey_hash):
                return keyed
        return None
    account = settings.account(login)
    if account is None or not account.password_hash:
        return None
    if not verify_password(command.psw, account.password_hash):
        return None
    if account.allowed_ips and not ip_in(client_ip, account.allowed_ips):
        return None
    return account


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


def dry_run(raw: bytes, *, settings: Settings | None, client_ip: str, now: datetime) -> DryRun:
    """Run the core over ``raw`` and report what the gateway would do."""
    out = io.StringIO()
    base = settings if settings is not None else Settings()
    if settings is None:
        out.write("no config file: account checks skipped, embedded defaults used\n")
    formats = carried_formats(base) if settings is not None else frozenset(Format)
    client_id: str | None = None
    try:
        content = read_mail(raw, default_charset=base.smtp.default_charset)
        out.write(f"subject:  {content.subject}\ncharset:  {content.charset}\n")
        command = parse_command(content.command)
        _describe_command(out, command)
        client_id = client_id_of(command.id)
        if settings is None:
            account: Account | None = Account(login=command.login.strip() or "apikey")
        else:
            account = _account(command, settings, client_ip)
        if account is None:
            raise RequestError(2, "login, password or client IP refused")
        request = build_request(
            command, account=account, now=now, region=base.smtp.default_region, formats=formats
        )
        _describe_request(out, request)
        if account.balance is not None and request.sms_count > account.balance:
            raise RequestError(3, "the request alone exceeds the configured balance")
    except RequestError as exc:
        line = error_line(exc.code, client_id or _PLACEHOLDER_ID)
        if exc.detail:
            out.write(f"reason:   {exc.detail}\n")
        out.write(f"answer:   {line}\n")
        return DryRun(ok=False, line=line, text=out.getvalue())
    line = ok_line(request.sms_count, request.client_id or _PLACEHOLDER_ID)
    out.write(f"answer:   {line}\n")
    return DryRun(ok=True, line=line, text=out.getvalue())
