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
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from mailbridge.core import intake as intake_mod
from mailbridge.core.fields import Fields, read_command
from mailbridge.core.intake import MailEnvelope
from mailbridge.core.login import LoginVerifier
from mailbridge.core.recipients import Route
from mailbridge.core.records import Intake
from mailbridge.core.request import build_forward_request, build_request
from mailbridge.errors import RequestError
from mailbridge.models import Format, MailContent, RouteKind, SmsRequest
from mailbridge.settings import Account, Settings

__all__ = ["MailReader", "Outcome", "process_mail", "run_now"]

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


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (every callable it awaits is synchronous).

    Raises RuntimeError when it does suspend: it then needs an event loop.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise RuntimeError("the coroutine suspended; run it in an event loop")
