"""The reply mailer over MemoryStorage: its wiring to storage notifications, its retries."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mailbridge.core.encoding import split_text
from mailbridge.core.records import InboundMailJob, ReplyJob
from mailbridge.delivery.clock import ManualClock
from mailbridge.delivery.mailer import Mailer, build_inbound, build_reply
from mailbridge.models import Format, Message, RouteKind, SmsRequest
from mailbridge.settings import DeliverySettings, LimitsSettings, ReplySettings, Settings
from mailbridge.storage.base import Intake, ReplyDraft
from mailbridge.storage.memory import MemoryStorage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class NotifyingStorage(MemoryStorage):
    """MemoryStorage with the ``subscribe_replies`` hook a shared (PostgreSQL) storage has."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[Callable[[], None]] = []
        self.subscribed = 0

    def subscribe_replies(self, callback: Callable[[], None]) -> Callable[[], None]:
        self.subscribed += 1
        self.callbacks.append(callback)

        def unsubscribe() -> None:
            self.callbacks.remove(callback)

        return unsubscribe

    def notify(self) -> None:
        """What the storage does when another instance queued a reply."""
        for callback in list(self.callbacks):
            callback()


def mailer(storage: MemoryStorage) -> Mailer:
    return Mailer(storage, Settings(), clock=lambda: T0)


async def test_subscribes_on_start_and_unsubscribes_on_stop() -> None:
    """start() hands the storage its wake(); stop() takes it back."""
    storage = NotifyingStorage()
    m = mailer(storage)
    assert storage.callbacks == []
    await m.start()
    assert storage.callbacks == [m.wake]
    await m.stop(1.0)
    assert storage.callbacks == []


async def test_subscribes_once_however_often_started() -> None:
    """A second start() while running neither subscribes again nor starts a second loop."""
    storage = NotifyingStorage()
    m = mailer(storage)
    await m.start()
    await m.start()
    assert storage.subscribed == 1
    await m.stop(1.0)
    assert storage.callbacks == []


async def test_restart_subscribes_again() -> None:
    """Stopped and started again, the mailer listens again."""
    storage = NotifyingStorage()
    m = mailer(storage)
    await m.start()
    await m.stop(1.0)
    await m.start()
    assert storage.callbacks == [m.wake]
    await m.stop(1.0)
    assert storage.callbacks == []


async def test_a_notification_wakes_the_mailer() -> None:
    """The storage's notification reaches the mailer's wake event."""
    storage = NotifyingStorage()
    m = mailer(storage)
    await m.start()
    try:
        m._wake.clear()
        storage.notify()
        assert m._wake.is_set()
    finally:
        await m.stop(1.0)


async def test_storage_without_notifications() -> None:
    """A storage without subscribe_replies (SQLite, memory) starts and stops as before."""
    m = mailer(MemoryStorage())
    await m.start()
    await m.stop(1.0)


async def _queue_reply(storage: MemoryStorage) -> None:
    """One accepted command mail with test=1, whose OK line is queued as a reply."""
    text = "hello"
    request = SmsRequest(
        account="alex",
        client_id=None,
        due=T0,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=1,
        messages=(
            Message(text=text, recipients=("+79990000001",), split=split_text(text, Format.SMS)),
        ),
    )
    intake = Intake(
        received_at=T0,
        client_ip="127.0.0.1",
        mail_from="ops@example.com",
        rcpt_to=("send@localhost",),
        raw=b"",
        mode=RouteKind.COMMAND,
        account="alex",
        client_id=None,
        request=request,
        error=None,
        test=1,
        reply=ReplyDraft(to="ops@example.com", subject="Re: x", in_reply_to="", references=""),
    )
    limits = LimitsSettings(duplicate_max=10**6, flood_max=10**6)
    result = await storage.accept(intake, limits=limits, reply_rate_per_hour=30, now=T0)
    assert result.error is None
    assert await storage.next_reply_due() == T0


def _closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_a_failed_reply_is_retried_after_a_doubling_gap() -> None:
    """Smarthost down: the reply is due again retry_first_s later, then twice that, by the clock."""
    storage = MemoryStorage()
    await _queue_reply(storage)
    clock = ManualClock(T0)
    settings = Settings(
        reply=ReplySettings(smarthost=f"127.0.0.1:{_closed_port()}"),
        delivery=DeliverySettings(retry_first_s=5, retry_max_s=600),
    )
    m = Mailer(storage, settings, clock=clock)
    assert await m.run_once() == 1
    assert await storage.next_reply_due() == T0 + timedelta(seconds=5)
    assert await m.run_once() == 0  # not due yet: the clock stands still
    clock.advance(5)
    assert await m.run_once() == 1
    assert await storage.next_reply_due() == T0 + timedelta(seconds=5 + 10)
    assert m.sent == 0


class TestBuildReply:
    """The reply mail and the inbound mail: one builder, the same header order."""

    @staticmethod
    def _reply(**overrides: object) -> ReplyJob:
        fields: dict[str, object] = {
            "reply_id": 7,
            "request_id": "R-1/2",
            "to": "ops@example.com",
            "subject": "Re: disk full",
            "in_reply_to": "<a@b>",
            "references": "<a@b>",
            "body": "OK = 1\n\n",
            "attempts": 0,
        }
        fields.update(overrides)
        return ReplyJob(**fields)  # type: ignore[arg-type]

    def test_headers_in_their_fixed_order(self) -> None:
        msg = build_reply(self._reply(), from_address="gw@x.test", hostname="mx.test", now=T0)
        head, _, body = msg.as_bytes().partition(b"\r\n\r\n")
        names = [line.split(b":", 1)[0] for line in head.split(b"\r\n")]
        assert names[:8] == [
            b"From",
            b"To",
            b"Subject",
            b"Date",
            b"Message-ID",
            b"In-Reply-To",
            b"References",
            b"Auto-Submitted",
        ]
        assert msg["Auto-Submitted"] == "auto-replied"
        assert msg["Message-ID"] == "<reply.R-12.7@mx.test>"
        assert msg["Subject"] == "Re: disk full"
        assert body == b"OK = 1\r\n"  # trailing blank lines cut to one line end

    def test_empty_subject_gets_each_kind_default(self) -> None:
        reply = build_reply(self._reply(subject=""), from_address="g@x", hostname="h", now=T0)
        assert reply["Subject"] == "Re:"
        inbound = InboundMailJob(
            inbound_id=3,
            to="z@example.com",
            from_address="+7999@sms.test",
            subject="\r\n",
            in_reply_to="",
            references="",
            body="hi",
            attempts=0,
        )
        mail = build_inbound(inbound, hostname="h", now=T0)
        assert mail["Subject"] == "SMS"
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["In-Reply-To"] is None
