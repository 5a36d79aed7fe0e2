"""The events sink, the status poller and the queue commands of receipts and inbound SMS,
over MemoryStorage."""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbridge.cli.queue import EXIT_OK, queue_inbound, queue_show, run_queue_command
from mailbridge.core.encoding import split_text
from mailbridge.core.records import Intake, ReceiptIn, ReplyDraft
from mailbridge.delivery.events import StorageEvents
from mailbridge.delivery.mailer import Mailer
from mailbridge.delivery.status import StatusPoller
from mailbridge.errors import TemporaryProviderError
from mailbridge.models import Format, Message, RouteKind, SmsRequest, SmsState
from mailbridge.providers.events import (
    Concat,
    InboundSms,
    Receipt,
    ReceiptState,
    SentSms,
    StatusQuery,
)
from mailbridge.settings import (
    DeliverySettings,
    InboundSettings,
    LimitsSettings,
    ReplySettings,
    Settings,
    SmtpSettings,
)
from mailbridge.storage.memory import MemoryStorage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
N1, N2 = "+79990000001", "+79990000002"
SETTINGS = Settings(
    smtp=SmtpSettings(domains=("sms.example.com",)),
    inbound=InboundSettings(mail_to="noc@example.com"),
)


class Clock:
    """A clock the tests move."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def enqueue(storage: MemoryStorage, *recipients: str) -> str:
    """A command request to ``recipients`` from ops@example.com, its rows sent as ``m<i>``."""
    request = SmsRequest(
        account="alex",
        client_id=None,
        due=T0,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=0,
        messages=(Message(text="hi", recipients=recipients, split=split_text("hi")),),
    )
    result = await storage.accept(
        Intake(
            received_at=T0,
            client_ip="127.0.0.1",
            mail_from="ops@example.com",
            rcpt_to=("send@sms.example.com",),
            raw=b"x",
            mode=RouteKind.COMMAND,
            account="alex",
            client_id=None,
            request=request,
            error=None,
            reply=ReplyDraft(
                to="ops@example.com", subject="Re: x", in_reply_to="<o@x>", references=""
            ),
        ),
        limits=LimitsSettings(),
        reply_rate_per_hour=30,
        now=T0,
    )
    jobs = await storage.claim_due(T0, limit=10, lease_s=60, owner="t")
    for job in sorted(jobs, key=lambda j: j.sms_id):
        await storage.mark_sent(
            job.sms_id, provider="smsc", provider_id=f"m{job.sms_id}", answer="", now=T0
        )
    return result.request_id


def receipt(mid: str, state: ReceiptState, word: str) -> Receipt:
    return Receipt(
        provider="smsc", message_id=mid, state=state, status=word, error_code=None, at=T0
    )


class TestSink:
    async def test_receipt_stored_and_mail_wakes_mailer(self) -> None:
        """A receipt is committed before the call returns; a queued mail wakes the mailer."""
        storage = MemoryStorage()
        woken: list[str] = []
        sink = StorageEvents(storage, SETTINGS, clock=Clock())
        sink.wake_on_mail(lambda: woken.append("mail"))
        rid = await enqueue(storage, N1)
        await sink.receipt(receipt("m1", ReceiptState.FAILED, "UNDELIV"))
        detail = await storage.show_request(rid)
        assert detail is not None
        assert detail.sms[0].state is SmsState.FAILED
        assert woken == ["mail"]
        assert sink.receipts == 1

    async def test_inbound_parts_then_mail(self) -> None:
        """Parts are stored one by one; the whole message queues the mail and wakes once."""
        storage = MemoryStorage()
        woken: list[str] = []
        sink = StorageEvents(storage, SETTINGS, clock=Clock(), on_mail=lambda: woken.append("m"))
        await enqueue(storage, N1)
        for seq in (2, 1):
            await sink.inbound(
                InboundSms(
                    provider="smsc",
                    source=N1,
                    destination="Alex",
                    text=f"<{seq}>",
                    received_at=T0,
                    concat=Concat(reference=5, total=2, sequence=seq),
                )
            )
        (mail,) = await storage.claim_inbound_mails(T0, limit=10, lease_s=60)
        assert (mail.to, mail.from_address) == ("ops@example.com", f"{N1}@sms.example.com")
        assert mail.body.startswith("<1><2>\n")
        assert woken == ["m"]


class FakeSmsc:
    """A StatusQuery provider answering from a table (the poller's unit test)."""

    name = "smsc"
    status_poll_s = 30.0

    def __init__(self, answers: dict[str, ReceiptState], *, fail: bool = False) -> None:
        self.answers = answers
        self.fail = fail
        self.asked: list[list[str]] = []

    async def query_status(self, sent: Sequence[SentSms], *, now: datetime) -> list[Receipt]:
        self.asked.append([s.message_id for s in sent])
        if self.fail:
            raise TemporaryProviderError("smsc: down")
        return [
            receipt(s.message_id, self.answers[s.message_id], self.answers[s.message_id].name)
            for s in sent
            if s.message_id in self.answers
        ]


class TestPoller:
    async def test_round_asks_and_applies(self) -> None:
        """A round asks the sent rows, applies the receipts; the next interval asks the rest."""
        storage = MemoryStorage()
        clock = Clock()
        sink = StorageEvents(storage, SETTINGS, clock=clock)
        rid = await enqueue(storage, N1, N2)
        smsc = FakeSmsc({"m1": ReceiptState.DELIVERED})
        assert isinstance(smsc, StatusQuery)
        poller = StatusPoller(storage, sink, SETTINGS, clock=clock)
        poller.set_providers({"smsc": smsc, "other": object()})
        assert await poller.run_once("smsc") == 2
        assert smsc.asked == [["m1", "m2"]]
        detail = await storage.show_request(rid)
        assert detail is not None
        assert [s.state for s in detail.sms] == [SmsState.DELIVERED, SmsState.SENT]
        assert await poller.run_once("smsc") == 0  # asked within status_poll_s
        clock.now = T0 + timedelta(seconds=31)
        assert await poller.run_once("smsc") == 1
        assert smsc.asked[-1] == ["m2"]
        assert await poller.run_once("other") == 0

    async def test_failed_round_is_not_fatal(self) -> None:
        """A provider that cannot be asked: the round ends, nothing changes."""
        storage = MemoryStorage()
        sink = StorageEvents(storage, SETTINGS, clock=Clock())
        rid = await enqueue(storage, N1)
        poller = StatusPoller(storage, sink, SETTINGS, clock=Clock())
        poller.set_providers({"smsc": FakeSmsc({}, fail=True)})
        assert await poller.run_once("smsc") == 0
        detail = await storage.show_request(rid)
        assert detail is not None
        assert detail.sms[0].state is SmsState.SENT

    async def test_zero_interval_is_off(self) -> None:
        """status_poll_s = 0: the provider is never asked."""
        storage = MemoryStorage()
        smsc = FakeSmsc({})
        smsc.status_poll_s = 0
        poller = StatusPoller(storage, StorageEvents(storage, SETTINGS), SETTINGS)
        poller.set_providers({"smsc": smsc})
        await enqueue(storage, N1)
        assert await poller.run_once("smsc") == 0
        assert smsc.asked == []


class TestQueueCommands:
    async def test_show_prints_the_receipt(self) -> None:
        """queue show gives each SMS's receipt."""
        storage = MemoryStorage()
        rid = await enqueue(storage, N1)
        await storage.record_receipt(
            ReceiptIn(
                provider="smsc",
                message_id="m1",
                state="failed",
                status="UNDELIV",
                error_code="001",
                at=T0,
            ),
            now=T0,
            reply_rate_per_hour=30,
        )
        out = io.StringIO()
        assert await queue_show(storage, rid, out=out) == EXIT_OK
        assert "    receipt: UNDELIV err 001 at 2025-03-01 12:00:00 UTC" in out.getvalue()

    async def test_inbound_lists_kept_and_mailed(self) -> None:
        """queue inbound: newest first, state, recipient, text on one line."""
        storage = MemoryStorage()
        rid = await enqueue(storage, N1)
        sink = StorageEvents(storage, Settings(), clock=Clock())
        await sink.inbound(
            InboundSms(
                provider="smsc", source=N1, destination="Alex", text="ok\nthanks", received_at=T0
            )
        )
        await sink.inbound(
            InboundSms(
                provider="smsc",
                source="+79990009999",
                destination="Alex",
                text="who?",
                received_at=T0,
            )
        )
        out = io.StringIO()
        assert await queue_inbound(storage, out=out) == EXIT_OK
        lines = out.getvalue().splitlines()
        assert lines[0].split() == [
            "IN",
            "RECEIVED",
            "FROM",
            "TO-NUMBER",
            "PARTS",
            "STATE",
            "MAILED-TO",
            "TEXT",
        ]
        assert lines[1].split()[2:6] == ["+79990009999", "Alex", "1", "kept"]
        assert lines[1].endswith("who?")
        assert f"ops@example.com (request {rid})" in lines[2]
        assert lines[2].endswith("ok thanks")

    def test_inbound_empty_through_the_cli(self) -> None:
        """The CLI action runs over the storage it opens."""
        out, err = io.StringIO(), io.StringIO()
        storage = MemoryStorage()
        args = argparse.Namespace(queue_command="inbound", limit=10)
        code = run_queue_command(
            Settings(), args, out=out, err=err, open_storage=lambda _url: storage
        )
        assert (code, out.getvalue()) == (EXIT_OK, "no inbound SMS\n")


class TestMailerRetries:
    async def test_smarthost_down_inbound_mail_waits(self) -> None:
        """Smarthost unreachable: the inbound mail goes back to the queue with backoff."""
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        storage = MemoryStorage()
        sink = StorageEvents(storage, SETTINGS, clock=Clock())
        await sink.inbound(
            InboundSms(provider="smsc", source=N1, destination="", text="hi", received_at=T0)
        )
        settings = Settings(
            smtp=SETTINGS.smtp,
            inbound=SETTINGS.inbound,
            reply=ReplySettings(smarthost=f"127.0.0.1:{port}", timeout_s=2.0),
            delivery=DeliverySettings(retry_first_s=5.0, retry_max_s=60.0),
        )
        mailer = Mailer(storage, settings, clock=lambda: T0)
        assert await mailer.run_once() == 1
        (view,) = await storage.list_inbound()
        assert (view.state, view.attempts) == ("queued", 1)
        assert await storage.next_inbound_due() == T0 + timedelta(seconds=5)
        assert await storage.claim_inbound_mails(T0, limit=10, lease_s=60) == []


def test_queue_inbound_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mailbridge queue inbound` on a real SQLite file: an SMS kept for want of a recipient."""
    from mailbridge.cli.main import main
    from mailbridge.storage.sqlite import SqliteStorage

    db = tmp_path / "mb.db"

    async def store() -> None:
        storage = SqliteStorage(db)
        await storage.open()
        try:
            sink = StorageEvents(storage, Settings(), clock=Clock())
            await sink.inbound(
                InboundSms(
                    provider="smpp", source=N1, destination="Alex", text="hi?", received_at=T0
                )
            )
        finally:
            await storage.close()

    asyncio.run(store())
    capsys.readouterr()  # the sink's log line
    cfg = tmp_path / "mb.toml"
    cfg.write_text(f'[storage]\nurl = "sqlite:///{db}"\n')
    assert main(["queue", "inbound", "--limit", "5", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[2:6] == [N1, "Alex", "1", "kept"]
    assert out[1].endswith("hi?")
