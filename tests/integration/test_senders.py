"""``allowed_senders`` as SPEC §3 says: absent = any sender of a trusted client; a list
narrows it; an explicit empty list refuses everyone."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import DaemonFactory

ALIAS: dict[str, Any] = {
    "address": "oncall@sms.example.com",
    "account": "alex",
    "to": ["+79991112233"],
    "template": "{subject}: {body}",
}
NUMBERS: dict[str, Any] = {
    "enabled": True,
    "account": "alex",
    "template": "{subject}: {body}",
    "allowed_senders": None,  # out of the base config's section
}


@pytest.mark.parametrize("rcpt", ["oncall@sms.example.com", "+79991234567@sms.example.com"])
async def test_absent_list_accepts_any_trusted_sender(
    start_daemon: DaemonFactory, rcpt: str
) -> None:
    """No allowed_senders: a trusted client's mail from any sender is taken (it got 550)."""
    daemon = await start_daemon({"forward": [ALIAS], "number_addresses": NUMBERS})
    code, message = await daemon.send("disk full", mail_from="cron@db-01.internal", rcpts=(rcpt,))
    assert (code, message.split(" ID - ")[0]) == (250, "2.0.0 OK - 1 SMS,")


@pytest.mark.parametrize("rcpt", ["oncall@sms.example.com", "+79991234567@sms.example.com"])
async def test_list_narrows(start_daemon: DaemonFactory, rcpt: str) -> None:
    daemon = await start_daemon(
        {"forward": [{**ALIAS, "allowed_senders": ["*@example.com"]}],
         "number_addresses": {**NUMBERS, "allowed_senders": ["*@example.com"]}}
    )  # fmt: skip
    assert (await daemon.send("x", mail_from="ops@example.com", rcpts=(rcpt,)))[0] == 250
    code, _ = await daemon.send("y", mail_from="cron@db-01.internal", rcpts=(rcpt,))
    assert code == 550


@pytest.mark.parametrize("rcpt", ["oncall@sms.example.com", "+79991234567@sms.example.com"])
async def test_empty_list_refuses_everyone(start_daemon: DaemonFactory, rcpt: str) -> None:
    daemon = await start_daemon(
        {"forward": [{**ALIAS, "allowed_senders": []}],
         "number_addresses": {**NUMBERS, "allowed_senders": []}}
    )  # fmt: skip
    code, message = await daemon.send("z", mail_from="ops@example.com", rcpts=(rcpt,))
    assert code == 550
    assert message.startswith("5.7.1")
