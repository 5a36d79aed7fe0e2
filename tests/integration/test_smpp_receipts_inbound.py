"""SMPP receipts and SMS from phones through the real daemon: the fake SMSC (smpplib's
codec) on loopback, the gateway's events sink, SQLite, and a real smarthost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mailbridge.models import SmsState
from mailbridge.storage.base import RequestDetail
from tests.fakes.smsc import FakeSmsc

from .conftest import SENDER, Daemon, DaemonFactory, Smarthost, command

SMPP_PASSWORD = "smpp-pw"
NUMBER = "+79991234567"


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    async with FakeSmsc(password=SMPP_PASSWORD) as server:
        yield server


def overrides(smsc: FakeSmsc) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "smpp",
                "type": "smpp",
                "host": "127.0.0.1",
                "port": smsc.port,
                "system_id": "client",
                "password": SMPP_PASSWORD,
                "timeout_s": 2.0,
                "connect_timeout_s": 2.0,
                "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.3,
            }
        ],
        "routing": {"default": ["smpp"]},
    }


async def submit(daemon: Daemon, text: str, **kw: Any) -> str:
    code, answer = await daemon.send(command(NUMBER, text), **kw)
    assert code == 250, answer
    return answer.rsplit("ID - ", 1)[-1].strip()


async def wait_detail(
    daemon: Daemon, rid: str, done: Callable[[RequestDetail], bool], timeout_s: float = 10.0
) -> RequestDetail:
    deadline = time.monotonic() + timeout_s
    while True:
        detail = await daemon.detail(rid)
        if done(detail):
            return detail
        assert time.monotonic() < deadline, [(s.state, s.receipt_status) for s in detail.sms]
        await asyncio.sleep(0.02)


async def test_undeliv_receipt_fails_and_mails(
    start_daemon: DaemonFactory, smsc: FakeSmsc, smarthost: Smarthost
) -> None:
    """UNDELIV err 012 after the submit: failed with the receipt, one ERROR mail."""
    smsc.faults.receipts = "after"
    smsc.faults.receipt_stat = "UNDELIV"
    smsc.faults.receipt_err = "012"
    daemon = await start_daemon(overrides(smsc))
    rid = await submit(daemon, "db down")
    detail = await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.FAILED)
    row = detail.sms[0]
    assert (row.receipt_status, row.receipt_error, row.provider_id) == (
        "UNDELIV",
        "012",
        smsc.accepted[0].message_id,
    )
    [mail] = await smarthost.wait_for(1, timeout_s=10)
    assert mail.rcpt_tos == [SENDER]
    assert mail.message.get_content().strip().splitlines() == [
        f"ERROR = 8 (Message cannot be delivered), ID - {rid}",
        f"not delivered to {NUMBER}: failed (UNDELIV err 012)",
    ]


async def test_receipt_before_submit_resp(start_daemon: DaemonFactory, smsc: FakeSmsc) -> None:
    """A DELIVRD that overtakes its submit_sm_resp is kept and applied: delivered."""
    smsc.faults.receipts = "before"
    smsc.faults.receipt_stat = "DELIVRD"
    daemon = await start_daemon(overrides(smsc))
    rid = await submit(daemon, "hello")
    detail = await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.DELIVERED)
    assert detail.sms[0].receipt_status == "DELIVRD"


async def test_long_sms_delivered_when_every_part_is(
    start_daemon: DaemonFactory, smsc: FakeSmsc
) -> None:
    """A text sent as parts: receipts per part, held and sent in reverse order."""
    smsc.faults.receipts = "hold"
    smsc.faults.receipt_stat = "DELIVRD"
    daemon = await start_daemon(overrides(smsc))
    rid = await submit(daemon, "Дежурному: сервер db-1 недоступен, проверьте репликацию. " * 2)
    await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.SENT)
    assert len(smsc.accepted) == 2
    await smsc.flush_receipts(reverse=True)
    await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.DELIVERED)


async def test_mo_in_parts_mailed_to_the_alert_sender(
    start_daemon: DaemonFactory, smsc: FakeSmsc, smarthost: Smarthost
) -> None:
    """A UCS-2 reply in two parts from the alerted phone: one mail to the alert's sender."""
    daemon = await start_daemon(overrides(smsc))
    rid = await submit(daemon, "disk full", mail_from="zabbix@example.com")
    await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.SENT)
    for seq, piece in ((2, "беру"), (1, "Принял, ")):
        status = await smsc.deliver(
            source=NUMBER.removeprefix("+"),
            destination="Alex",
            short_message=bytes([5, 0, 3, 77, 2, seq]) + piece.encode("utf-16-be"),
            esm_class=0x40,
            data_coding=8,
        )
        assert status == 0  # acknowledged only once stored
    [mail] = await smarthost.wait_for(1, timeout_s=10)
    assert mail.rcpt_tos == ["zabbix@example.com"]
    msg = mail.message
    assert msg["Subject"] == "Принял, беру"
    assert msg["From"] == f"{NUMBER}@sms.example.com"
    assert msg["In-Reply-To"] == "<test-1@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
