"""Delivery receipts and SMS from phones, end to end on a real in-process gateway.

* Receipts over HTTP: SMSC's status query served by the fake provider
  (:class:`~tests.fakes.FakeProviderServer`, ``status.php``) reports
  delivered/undeliverable per number; the rows end ``delivered``/``failed``
  with the receipt, and a request whose every SMS failed mails its sender the
  not-delivered lines through a real aiosmtpd smarthost.
* Inbound: an SMS fed to the daemon's events sink (as an SMPP session would)
  ends as a real mail at the smarthost: back to the envelope sender of the
  alert that went to that phone, else to ``[inbound] mail_to``, else kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.models import SmsState
from mailbridge.providers.events import Concat, InboundSms, Receipt, ReceiptState
from mailbridge.storage.base import RequestDetail
from tests.fakes import FakeProviderServer

from .conftest import SENDER, Daemon, DaemonFactory, Smarthost, command, settings_from

USER, PASSWORD = "client", "pw"
OK_NUMBER, BAD_NUMBER = "+79991234567", "+79991234568"

Servers = Callable[[], Awaitable[FakeProviderServer]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviderServer]:
    """A fake SMSC: +7…67 delivered, +7…68 undeliverable (status 20, err 1)."""
    srv = await FakeProviderServer(username=USER, password=PASSWORD).start()
    srv.faults.statuses = {OK_NUMBER: [1, 0], BAD_NUMBER: [20, 1]}
    yield srv
    await srv.stop()


def smsc(srv: FakeProviderServer, *, poll_s: float = 0.2) -> dict[str, Any]:
    """An ``smsc`` provider on the fake, asking the status every ``poll_s``."""
    return {
        "name": "smsc",
        "type": "smsc",
        "url": srv.url("smsc"),
        "username": USER,
        "password": PASSWORD,
        "timeout_s": 2.0,
        "status_poll_s": poll_s,
    }


async def submit(daemon: Daemon, line: str, **kw: Any) -> str:
    """Send one command mail; the request ID of its ``OK`` answer."""
    code, message = await daemon.send(line, **kw)
    assert code == 250, message
    assert "OK - " in message, message
    return message.rsplit("ID - ", 1)[-1].strip()


async def wait_detail(
    daemon: Daemon, rid: str, done: Callable[[RequestDetail], bool], timeout_s: float = 10.0
) -> RequestDetail:
    """Poll ``queue show`` data until ``done`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        detail = await daemon.detail(rid)
        if done(detail):
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(
                f"request {rid}: {[(s.state, s.receipt_status) for s in detail.sms]}"
            )
        await asyncio.sleep(0.02)


def states(detail: RequestDetail) -> dict[str, SmsState]:
    return {s.recipient: s.state for s in detail.sms}


async def test_smsc_status_query_moves_rows(
    start_daemon: DaemonFactory, fake: FakeProviderServer, smarthost: Smarthost
) -> None:
    """DELIVERED and UNDELIVERABLE from status.php become delivered and failed, with the
    receipt; one SMS delivered, so no not-delivered mail."""
    daemon = await start_daemon({"providers": [smsc(fake)], "routing": {"default": ["smsc"]}})
    rid = await submit(daemon, command(f"{OK_NUMBER},{BAD_NUMBER}", "disk full"))
    detail = await wait_detail(
        daemon, rid, lambda d: set(states(d).values()) == {SmsState.DELIVERED, SmsState.FAILED}
    )
    by_number = {s.recipient: s for s in detail.sms}
    assert by_number[OK_NUMBER].state is SmsState.DELIVERED
    assert by_number[OK_NUMBER].receipt_status == "DELIVERED"
    assert by_number[BAD_NUMBER].state is SmsState.FAILED
    assert (by_number[BAD_NUMBER].receipt_status, by_number[BAD_NUMBER].receipt_error) == (
        "UNDELIVERABLE",
        "1",
    )
    assert by_number[BAD_NUMBER].receipt_at is not None
    asked = fake.requests_for("smsc_status")
    assert {r.first("phone") for r in asked} >= {OK_NUMBER, BAD_NUMBER}
    assert all(r.first("psw") == PASSWORD and r.first("fmt") == "3" for r in asked)
    await asyncio.sleep(0.5)  # more rounds: final rows are not asked again, no mail
    later = fake.requests_for("smsc_status")
    await asyncio.sleep(0.5)
    assert len(fake.requests_for("smsc_status")) == len(later)
    assert smarthost.received == []


async def test_every_sms_failed_mails_the_sender(
    start_daemon: DaemonFactory, fake: FakeProviderServer, smarthost: Smarthost
) -> None:
    """A request (test=0) whose only SMS the network refused gets one ERROR mail."""
    daemon = await start_daemon({"providers": [smsc(fake)], "routing": {"default": ["smsc"]}})
    rid = await submit(daemon, command(BAD_NUMBER, "disk full"), subject="alert 7")
    [mail] = await smarthost.wait_for(1, timeout_s=10)
    assert (mail.mail_from, mail.rcpt_tos) == ("<>", [SENDER])
    msg = mail.message
    assert msg["Subject"] == "Re: alert 7"
    assert msg["In-Reply-To"] == "<test-1@example.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg.get_content().strip().splitlines() == [
        f"ERROR = 8 (Message cannot be delivered), ID - {rid}",
        f"not delivered to {BAD_NUMBER}: failed (UNDELIVERABLE err 1)",
    ]
    await asyncio.sleep(0.6)  # later rounds do not send it again
    assert len(smarthost.received) == 1


async def test_receipt_to_the_sink_and_duplicates(
    start_daemon: DaemonFactory, fake: FakeProviderServer, smarthost: Smarthost
) -> None:
    """A receipt handed to the sink moves the row once; a repeat and an unknown id are kept
    harmless; a receipt before its id is known is applied when it is."""
    daemon = await start_daemon(
        {"providers": [smsc(fake, poll_s=0)], "routing": {"default": ["smsc"]}}
    )
    events = daemon.gateway.events
    assert events is not None
    at = datetime(2030, 1, 1, tzinfo=UTC)

    def receipt(mid: str, state: ReceiptState, word: str) -> Receipt:
        return Receipt(
            provider="smsc", message_id=mid, state=state, status=word, error_code=None, at=at
        )

    # early: the id SMSC will give the first SMS row is its client id mb-1
    await events.receipt(receipt("mb-1", ReceiptState.DELIVERED, "DELIVRD"))
    rid = await submit(daemon, command(OK_NUMBER, "hi"))
    detail = await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.DELIVERED)
    assert detail.sms[0].provider_id == "mb-1"
    assert (detail.sms[0].receipt_status, detail.sms[0].receipt_at) == ("DELIVRD", at)
    await events.receipt(receipt("mb-1", ReceiptState.DELIVERED, "DELIVRD"))
    await events.receipt(receipt("mb-1", ReceiptState.EXPIRED, "EXPIRED"))
    await events.receipt(receipt("nobody", ReceiptState.FAILED, "UNDELIV"))
    detail = await daemon.detail(rid)
    assert detail.sms[0].state is SmsState.DELIVERED
    assert smarthost.received == []


async def test_inbound_reply_goes_to_the_alert_sender(
    start_daemon: DaemonFactory, fake: FakeProviderServer, smarthost: Smarthost
) -> None:
    """An SMS from the phone an alert went to is mailed to the alert's envelope sender,
    in its thread, from the phone at the gateway's domain; parts joined first."""
    daemon = await start_daemon(
        {
            "providers": [smsc(fake, poll_s=0)],
            "routing": {"default": ["smsc"]},
            "inbound": {"mail_to": "noc@example.com"},
        }
    )
    rid = await submit(daemon, command(OK_NUMBER, "db down"), mail_from="zabbix@example.com")
    await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.SENT)
    events = daemon.gateway.events
    assert events is not None
    now = datetime.now(UTC)
    for seq, text in ((2, "on it, "), (1, "ack: "), (3, "eta 10 min"), (2, "on it, ")):
        await events.inbound(
            InboundSms(
                provider="smsc",
                source=OK_NUMBER.removeprefix("+"),
                destination="Alex",
                text=text,
                received_at=now,
                concat=Concat(reference=7, total=3, sequence=seq),
            )
        )
    [mail] = await smarthost.wait_for(1, timeout_s=10)
    assert (mail.mail_from, mail.rcpt_tos) == ("<>", ["zabbix@example.com"])
    msg = mail.message
    assert msg["From"] == f"{OK_NUMBER}@sms.example.com"
    assert msg["Subject"] == "ack: on it, eta 10 min"
    assert msg["In-Reply-To"] == "<test-1@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content().replace("\r\n", "\n")
    assert body.startswith("ack: on it, eta 10 min\n")
    assert f"in reply to request ID - {rid}" in body
    await asyncio.sleep(0.3)
    assert len(smarthost.received) == 1  # the repeated part did not make a second mail
    storage = daemon.gateway.storage
    [item] = await storage.list_inbound()  # type: ignore[union-attr]
    assert (item.state, item.to, item.request_id, item.parts) == (
        "sent",
        "zabbix@example.com",
        rid,
        3,
    )


async def test_inbound_without_request_fallback_then_kept(
    start_daemon: DaemonFactory, smarthost: Smarthost
) -> None:
    """No request to the phone: [inbound] mail_to; without it the SMS is kept."""
    daemon = await start_daemon({"inbound": {"mail_to": "noc@example.com"}})
    events = daemon.gateway.events
    assert events is not None
    now = datetime.now(UTC)
    sms = InboundSms(
        provider="file", source="+79990001122", destination="1234", text="hello?", received_at=now
    )
    await events.inbound(sms)
    [mail] = await smarthost.wait_for(1, timeout_s=10)
    assert mail.rcpt_tos == ["noc@example.com"]
    assert mail.message["In-Reply-To"] is None

    kept = await start_daemon()
    assert kept.gateway.events is not None
    await kept.gateway.events.inbound(sms)
    await asyncio.sleep(0.3)
    assert len(smarthost.received) == 1
    [item] = await kept.gateway.storage.list_inbound()  # type: ignore[union-attr]
    assert (item.state, item.to, item.text) == ("kept", None, "hello?")


async def test_reload_starts_polling_the_new_provider(
    start_daemon: DaemonFactory, fake: FakeProviderServer, smarthost: Smarthost
) -> None:
    """SIGHUP's reload hands the rebuilt providers to the status poller: polling turned on
    by a reload reaches rows sent before it."""
    daemon = await start_daemon(
        {"providers": [smsc(fake, poll_s=0)], "routing": {"default": ["smsc"]}}
    )
    rid = await submit(daemon, command(OK_NUMBER, "hi"))
    await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.SENT)
    await asyncio.sleep(0.5)
    assert fake.requests_for("smsc_status") == []
    doc = dict(daemon.doc)
    doc["providers"] = [smsc(fake, poll_s=0.2)]
    daemon.gateway.reload(settings_from(doc))
    detail = await wait_detail(daemon, rid, lambda d: d.sms[0].state is SmsState.DELIVERED)
    assert detail.sms[0].receipt_status == "DELIVERED"
