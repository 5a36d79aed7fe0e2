"""``command_call_limit`` per transaction: a session carries any number of mails, while one
transaction's commands stay bounded."""

from __future__ import annotations

import asyncio
import smtplib

from .conftest import Daemon, DaemonFactory, command, make_mail


def _many_mails(daemon: Daemon, count: int) -> list[int]:
    """``count`` command mails over ONE connection, as a relay's connection cache sends them."""
    codes: list[int] = []
    with smtplib.SMTP(daemon.host, daemon.port, timeout=10) as client:
        client.ehlo("relay.example.com")
        for i in range(count):
            raw = make_mail(command(f"+7999{1000000 + i}", f"alert {i}"))
            client.mail("ops@example.com")
            client.rcpt("send@sms.example.com")
            code, _ = client.data(raw)
            codes.append(code)
    return codes


async def test_session_carries_more_mails_than_the_limit(start_daemon: DaemonFactory) -> None:
    """150 mails over one session with command_call_limit = 100: all 250 (the 101st MAIL got
    421 4.7.0 MAIL sent too many times)."""
    daemon = await start_daemon({"limits": {"flood_max": 1000, "duplicate_max": 1000}})
    assert daemon.settings.smtp.command_call_limit == 100
    codes = await asyncio.to_thread(_many_mails, daemon, 150)
    assert codes == [250] * 150


def _noops(daemon: Daemon, plan: list[str]) -> list[tuple[int, bytes]]:
    answers: list[tuple[int, bytes]] = []
    client = smtplib.SMTP(daemon.host, daemon.port, timeout=10)
    try:
        client.ehlo("client.example.com")
        for step in plan:
            if step == "mail":
                client.mail("ops@example.com")
                client.rcpt("send@sms.example.com")
                answers.append(client.data(make_mail(command(mes=f"m{len(answers)}"))))
            else:
                answers.append(client.docmd(step))
    except smtplib.SMTPServerDisconnected:
        answers.append((-1, b"disconnected"))
    finally:
        client.close()
    return answers


async def test_one_transaction_stays_bounded(start_daemon: DaemonFactory) -> None:
    """With command_call_limit = 5: 5 NOOPs, a mail, 5 NOOPs again are fine; a 6th NOOP before
    the next mail ends the session with 421."""
    daemon = await start_daemon({"smtp": {"command_call_limit": 5}})
    plan = ["NOOP"] * 5 + ["mail"] + ["NOOP"] * 6
    answers = await asyncio.to_thread(_noops, daemon, plan)
    codes = [code for code, _ in answers]
    assert codes[:5] == [250] * 5
    assert codes[5] == 250  # the mail
    assert codes[6:11] == [250] * 5
    assert answers[11] == (421, b"4.7.0 NOOP sent too many times")
