"""Any mix of recipients in one mail (SPEC §3): the command address, forward aliases and
number addresses in one transaction, stored together or not at all."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from .conftest import COMMAND_TO, DaemonFactory, command
from .test_recipes import outbox_records

ALIAS: dict[str, Any] = {
    "address": "oncall@sms.example.com",
    "account": "alex",
    "to": ["+79991112233", "+79991234570"],
    "template": "{subject}: {body}",
}


async def test_alias_and_numbers_in_one_mail(start_daemon: DaemonFactory) -> None:
    """Alertmanager's to: 'oncall@…, +7…@…': one transaction, 250 with the total and every
    request id; a number reached through the alias and its own address gets one SMS."""
    daemon = await start_daemon({"forward": [ALIAS]})
    rcpts = ("oncall@sms.example.com", "+79991234570@sms.example.com",
             "+79991234571@sms.example.com")  # fmt: skip
    with capture_logs() as logs:
        code, message = await daemon.send("disk full", subject="DiskFull", rcpts=rcpts)
    assert code == 250, message
    assert message == "2.0.0 OK - 3 SMS, ID - 1, 2"
    records = await outbox_records(daemon, 3)
    assert sorted(r["recipient"] for r in records) == [
        "+79991112233", "+79991234570", "+79991234571"
    ]  # fmt: skip
    assert {r["text"] for r in records} == {"DiskFull: disk full"}
    (mail,) = [e for e in logs if e.get("event") == "mail"]  # one line, each request in it
    assert (mail["id"], mail["mode"], mail["n"]) == ("1, 2", "mixed", 3)
    assert [(r["id"], r["mode"], r["n"]) for r in mail["requests"]] == [
        ("1", "forward", 2), ("2", "number", 1)
    ]  # fmt: skip
    assert {(await daemon.detail("1")).summary.mode, (await daemon.detail("2")).summary.mode} == {
        "forward", "number"
    }  # fmt: skip


async def test_command_and_number_in_one_mail(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    code, message = await daemon.send(
        command("+79990000011", "from the command"),
        rcpts=(COMMAND_TO, "+79990000012@sms.example.com"),
    )
    assert code == 250, message
    assert message.startswith("2.0.0 OK - 2 SMS, ID - ")
    records = await outbox_records(daemon, 2)
    assert sorted(r["recipient"] for r in records) == ["+79990000011", "+79990000012"]


async def test_one_refusal_refuses_the_whole_mail(start_daemon: DaemonFactory) -> None:
    """The alias's account is out of balance: nothing of the mail is stored, 550 in session."""
    daemon = await start_daemon({"forward": [{**ALIAS, "account": "poor"}]})
    code, message = await daemon.send(
        "x" * 300, rcpts=("oncall@sms.example.com", "+79991234571@sms.example.com")
    )
    assert code == 550
    assert "ERROR = 3" in message
    storage = daemon.gateway.storage
    assert storage is not None
    assert await storage.list_requests() == []


async def test_invalid_number_address_says_so(start_daemon: DaemonFactory) -> None:
    """An invalid number address: 550 5.1.1 saying the number is invalid (was "no such
    mailbox here")."""
    daemon = await start_daemon()
    code, message = await daemon.send("x", rcpts=("12345@sms.example.com",))
    assert (code, message) == (550, "5.1.1 Recipient address rejected: invalid phone number")
    code, message = await daemon.send("x", rcpts=("nobody@sms.example.com",))
    assert (code, message) == (550, "5.1.1 Recipient address rejected: no such mailbox here")
