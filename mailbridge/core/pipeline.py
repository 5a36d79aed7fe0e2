"""One mail, read → parse → verify → build: the whole intake of SPEC §1–3 in one function.

:func:`process_mail` is what the SMTP handler runs at the end of DATA and
what ``mailbridge parse`` runs over a file. It reads the mail, and then by
mode:

* command: parse the command (:func:`~mailbridge.core.fields.read_command`),
  verify the login with the ``verify`` callable, build the request;
* forward / number address: fill the template and build the request of the
  alias's (or ``[number_addresses]``'s) account directly.

The two waits — reading a large mail, checking a password — are callables
the caller passes (the gateway runs both in worker threads), so the
function does no I/O itself. A caller with synchronous callables runs it
with :func:`run_now`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from mailbridge.core import intake as intake_mod
from mailbridge.core.fields import Fields, read_command
from mailbridge.core.intake import MailEnvelope
from mailbridge.core.limits import request_fingerprint
from mailbridge.core.login import LoginVerifier
from mailbridge.core.recipients import Route, route_groups
from mailbridge.core.records import Intake
from mailbridge.core.redact import mask_raw
from mailbridge.core.request import build_forward_request, build_request
from mailbridge.errors import RequestError
from mailbridge.models import Format, MailContent, RouteKind, SmsRequest
from mailbridge.settings import Account, Settings

__all__ = ["MailReader", "Outcome", "process_all", "process_mail", "run_now"]

#: The raw mail → its content (``mail.read_mail`` bound to the default charset).
MailReader = Callable[[bytes], Awaitable[MailContent]]

T = TypeVar("T")


class Outcome(NamedTuple):
    """The intake of one mail and what the pipeline learnt on the way."""

    intake: Intake
    content: MailContent | None = None  # None when the mail could not be read
    fields: Fields | None = None  # the command, when one was parsed


async def process_mail(
    env: MailEnvelope,
    routes: Sequence[Route],
    *,
    settings: Settings,
    now: datetime,
    formats: frozenset[Format],
    read: MailReader,
    verify: LoginVerifier,
) -> Outcome:
    """The intake of the mail ``env`` sent to ``routes`` (none: the command mailbox)."""
    mode = routes[0].kind if routes else RouteKind.COMMAND
    try:
        content = await read(env.raw)
    except RequestError as exc:
        intake = intake_mod.error_intake(
            env, mode=mode, code=exc.code, detail=exc.detail, settings=settings,
            content=intake_mod.fallback_content(env.raw),
        )  # fmt: skip
        return Outcome(intake=intake)
    region = settings.smtp.default_region

    if mode == RouteKind.COMMAND:
        try:
            fields = read_command(content.command)
        except RequestError as exc:
            intake = intake_mod.error_intake(
                env, mode=mode, code=exc.code, detail=exc.detail, settings=settings,
                content=content,
            )  # fmt: skip
            return Outcome(intake=intake, content=content)
        verified = await verify(fields.command.login, fields.command.psw)
        masked = mask_raw(  # the raw mail is stored with the password or API key masked
            env.raw,
            login=fields.command.login.strip(),
            secret=fields.command.psw.strip(),
            charset=content.charset,
            default_charset=settings.smtp.default_charset,
        )
        if masked is not env.raw:
            env = MailEnvelope(
                received_at=env.received_at, client_ip=env.client_ip, mail_from=env.mail_from,
                rcpt_to=env.rcpt_to, raw=masked,
            )  # fmt: skip

        def build(fields: Fields, account: Account) -> SmsRequest:
            return build_request(fields, account=account, now=now, region=region, formats=formats)

        intake = intake_mod.command_intake(
            env,
            settings=settings,
            content=content,
            fields=fields,
            account=verified.account,
            login_known=verified.login_known,
            build=build,
        )
        return Outcome(intake=intake, content=content, fields=fields)

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
        intake = intake_mod.error_intake(
            env, mode=mode, code=2, detail="account not configured", settings=settings
        )
        return Outcome(intake=intake, content=content)
    text = intake_mod.template_text(template, max_parts, content=content, mail_from=env.mail_from)
    try:
        request = build_forward_request(
            account=account, phones=phones, text=text, sender=sender or "",
            now=now, region=region, formats=formats,
        )  # fmt: skip
    except RequestError as exc:
        intake = intake_mod.error_intake(
            env, mode=mode, code=exc.code, detail=exc.detail, settings=settings,
            account=account.login, balance=account.balance,
        )  # fmt: skip
        return Outcome(intake=intake, content=content)
    intake = intake_mod.request_intake(
        env, mode=mode, request=request, account=account, settings=settings
    )
    return Outcome(intake=intake, content=content)


async def process_all(
    env: MailEnvelope,
    routes: Sequence[Route],
    *,
    settings: Settings,
    now: datetime,
    formats: frozenset[Format],
    read: MailReader,
    verify: LoginVerifier,
) -> list[Outcome]:
    """The intakes of one mail to any mix of recipients (SPEC §3): one per request it makes
    (:func:`~mailbridge.core.recipients.route_groups`: the command, each alias, the numbers).

    The mail is read once. A number reached through several recipients gets one SMS: the
    first request that reaches it keeps it (the command's own numbers are never dropped),
    the later ones lose it, and a request left with no recipient at all is dropped. With
    one group this is :func:`process_mail` alone.
    """
    groups = route_groups(routes) or [[]]
    content_of: dict[int, MailContent] = {}

    async def read_once(raw: bytes) -> MailContent:
        if 0 not in content_of:
            content_of[0] = await read(raw)
        return content_of[0]

    outcomes: list[Outcome] = []
    reached: set[str] = set()
    for group in groups:
        outcome = await process_mail(
            env, group, settings=settings, now=now, formats=formats, read=read_once,
            verify=verify,
        )  # fmt: skip
        request = outcome.intake.request
        if request is not None and len(groups) > 1:
            kept = _without(request, reached)
            if kept is None:
                continue
            if kept is not request:
                intake = replace(
                    outcome.intake, request=kept,
                    fingerprint=request_fingerprint(kept, time_spec=""),
                )  # fmt: skip
                outcome = outcome._replace(intake=intake)
            reached.update(kept.recipients)
        outcomes.append(outcome)
    return outcomes


def _without(request: SmsRequest, reached: set[str]) -> SmsRequest | None:
    """``request`` less the recipients in ``reached`` (None: nothing left)."""
    if not reached.intersection(request.recipients):
        return request
    messages = []
    for message in request.messages:
        left = tuple(r for r in message.recipients if r not in reached)
        if left:
            messages.append(replace(message, recipients=left))
    return replace(request, messages=tuple(messages)) if messages else None


def run_now(
    coro: Coroutine[Any, Any, T],
    suspended: str = "the coroutine suspended; run it in an event loop",
) -> T:
    """The result of a coroutine that never suspends (every callable it awaits is synchronous).

    Raises RuntimeError with the text ``suspended`` when it does suspend: it then
    needs an event loop.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise RuntimeError(suspended)
