"""The whole intake of one mail, every mode, with the password check passed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

import pytest

from mailbridge.core.intake import MailEnvelope
from mailbridge.core.login import Verified, check_now, verify_login
from mailbridge.core.mail import read_mail
from mailbridge.core.passwords import hash_password
from mailbridge.core.pipeline import Outcome, process_mail, run_now
from mailbridge.core.recipients import Route, RouteKind
from mailbridge.errors import RequestError
from mailbridge.models import Format, MailContent
from mailbridge.settings import Account, ForwardAlias, Settings

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
HASH = hash_password("pw")
ALIAS = ForwardAlias(
    address="oncall@localhost", account="alex", to=("+79991112233",), template="{subject}: {body}"
)
SETTINGS = Settings(
    accounts=(Account(login="alex", password_hash=HASH, default_sender="Alex"),), forward=(ALIAS,)
)
FORMATS = frozenset(Format)


async def read(raw: bytes) -> MailContent:
    return read_mail(raw, default_charset="utf-8")


def mail(body: str, subject: str = "s") -> bytes:
    return f"From: ops@example.com\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def run(raw: bytes, routes: Sequence[Route] = (), *, settings: Settings = SETTINGS) -> Outcome:
    env = MailEnvelope(
        received_at=NOW, client_ip="127.0.0.1", mail_from="ops@example.com", rcpt_to=(), raw=raw
    )
    verify = partial(verify_login, settings=settings, check=check_now)
    return run_now(
        process_mail(
            env, routes, settings=settings, now=NOW, formats=FORMATS, read=read, verify=verify
        )
    )


def test_command_mail() -> None:
    """Read, parse, verify, build: an accepted command with its fields and content."""
    out = run(mail("alex:pw:7:::+79991234567:hi"))
    intake = out.intake
    assert (intake.mode, intake.account, intake.client_id, intake.error) == (
        RouteKind.COMMAND, "alex", "7", None,
    )  # fmt: skip
    assert intake.request is not None
    assert out.fields is not None
    assert out.content is not None
    assert intake.request.messages[0].recipients == ("+79991234567",)
    assert out.fields.client_id.get() == "7"
    assert out.content.subject == "s"


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ("alex:bad:::::+79991234567:hi", 2, "login, password or client IP refused"),
        ("nope", 1, "command needs six colons"),
        ("alex:pw:x y::::+79991234567:hi", 1, "invalid id"),
    ],
)
def test_command_errors(body: str, code: int, detail: str) -> None:
    """Each stage's refusal becomes the intake's error."""
    intake = run(mail(body)).intake
    assert (intake.error, intake.error_detail, intake.request) == (code, detail, None)


def test_forward_mail() -> None:
    """A forward alias: the template's text to the alias's numbers, under its account."""
    route = Route(kind=RouteKind.FORWARD, address="oncall@localhost", alias=ALIAS)
    out = run(mail("disk full", subject="alert"), [route])
    intake = out.intake
    assert (intake.mode, intake.account, intake.reply) == (RouteKind.FORWARD, "alex", None)
    assert intake.request is not None
    assert intake.request.mode == RouteKind.FORWARD
    assert [(m.text, m.recipients) for m in intake.request.messages] == [
        ("alert: disk full", ("+79991112233",))
    ]
    assert out.fields is None


def test_number_mail_without_account() -> None:
    """Number addresses whose account vanished (a reload race): ERROR 2, nothing built."""
    routes = [Route(kind=RouteKind.NUMBER, address="+79991234567@localhost", number="+79991234567")]
    intake = run(mail("hi"), routes).intake
    assert (intake.mode, intake.error, intake.error_detail) == (
        RouteKind.NUMBER, 2, "account not configured",
    )  # fmt: skip


def test_unreadable_mail_keeps_headers_for_the_reply() -> None:
    """A mail the reader refuses is its error, with a reply drafted from the headers alone."""

    async def refuse(raw: bytes) -> MailContent:
        raise RequestError(1, "hostile mail")

    env = MailEnvelope(
        received_at=NOW, client_ip="127.0.0.1", mail_from="ops@example.com", rcpt_to=(),
        raw=b"Subject: hey\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n",
    )  # fmt: skip
    verify = partial(verify_login, settings=SETTINGS, check=check_now)
    out = run_now(
        process_mail(
            env, (), settings=SETTINGS, now=NOW, formats=FORMATS, read=refuse, verify=verify
        )
    )
    assert (out.intake.error, out.intake.error_detail) == (1, "hostile mail")
    assert out.content is None
    assert out.intake.reply is not None
    assert (out.intake.reply.subject, out.intake.reply.in_reply_to) == ("Re: hey", "<m@x>")


def test_password_check_is_the_callers() -> None:
    """The pipeline checks passwords only through the verify callable it was given."""
    seen: list[tuple[str, str]] = []

    async def verify(login: str, password: str) -> Verified:
        seen.append((login, password))
        return Verified(account=Account(login="alex"), login_known=True)

    env = MailEnvelope(
        received_at=NOW, client_ip="1.2.3.4", mail_from="", rcpt_to=(),
        raw=mail("alex:secret:::::+79991234567:hi"),
    )  # fmt: skip
    out = run_now(
        process_mail(env, (), settings=SETTINGS, now=NOW, formats=FORMATS, read=read, verify=verify)
    )
    assert seen == [("alex", "secret")]
    assert out.intake.error is None


def test_run_now_refuses_a_coroutine_that_waits() -> None:
    """run_now is only for coroutines that never suspend."""
    import asyncio

    async def waits() -> int:
        await asyncio.sleep(0)
        return 1

    with pytest.raises(RuntimeError, match="suspended"):
        run_now(waits())


def test_run_now_says_the_callers_text() -> None:
    """A caller (the SQLite connector) names what suspended in the error."""
    import asyncio

    async def waits() -> int:
        await asyncio.sleep(0)
        return 1

    with pytest.raises(RuntimeError, match=r"^SQLite work awaited"):
        run_now(waits(), "SQLite work awaited something other than its connection")
