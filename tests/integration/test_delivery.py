"""Delivery end to end: SQLite, the dispatcher, real adapters, fake providers on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mailbridge.core.encoding import split_text
from mailbridge.delivery.dispatcher import Dispatcher
from mailbridge.models import Format, Message, RouteKind, SmsRequest, SmsState
from mailbridge.providers import build_providers
from mailbridge.settings import (
    DeliverySettings,
    LimitsSettings,
    ProviderSettings,
    RoutingSettings,
    Settings,
)
from mailbridge.storage.base import Intake, RequestDetail
from mailbridge.storage.sqlite import SqliteStorage
from tests.fakes import FakeProviderServer

from .conftest import Daemon, DaemonFactory, command

USER, PASSWORD = "client", "pw"
LIMITS = LimitsSettings(duplicate_max=10**6, flood_max=10**6)
FAST = DeliverySettings(retry_first_s=0.2, retry_max_s=0.5, lease_s=5.0)


def provider(
    name: str, server: FakeProviderServer, kind: str = "miatel", **extra: object
) -> ProviderSettings:
    fields: dict[str, object] = {
        "name": name,
        "type": kind,
        "url": server.url(kind),
        "username": USER,
        "password": PASSWORD,
        "timeout_s": 2.0,
        "connect_timeout_s": 0.5,
        "concurrency": 4,
    }
    fields.update(extra)
    return ProviderSettings(**fields)  # type: ignore[arg-type]


def settings(
    *providers: ProviderSettings,
    delivery: DeliverySettings = FAST,
    breaker_reset_s: float = 0.5,
) -> Settings:
    return Settings(
        providers=providers,
        routing=RoutingSettings(
            default=tuple(p.name for p in providers),
            breaker_failures=2,
            breaker_reset_s=breaker_reset_s,
        ),
        delivery=delivery,
    )


class Harness:
    """SQLite storage plus a running dispatcher; enqueue requests, wait for states."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self.dispatcher: Dispatcher | None = None

    async def start(self, conf: Settings) -> Dispatcher:
        self.dispatcher = Dispatcher(
            self.storage, build_providers(conf.providers), conf, owner="test"
        )
        await self.dispatcher.start()
        return self.dispatcher

    async def enqueue(
        self,
        recipients: Sequence[str],
        text: str = "hello",
        *,
        due: datetime | None = None,
        fmt: Format = Format.SMS,
    ) -> str:
        now = datetime.now(UTC)
        request = SmsRequest(
            account="alex",
            client_id=None,
            due=due or now,
            translit=0,
            format=fmt,
            sender="Alex",
            test=0,
            messages=(
                Message(text=text, recipients=tuple(recipients), split=split_text(text, fmt)),
            ),
        )
        intake = Intake(
            received_at=now,
            client_ip="127.0.0.1",
            mail_from="ops@example.com",
            rcpt_to=("send@localhost",),
            raw=b"",
            mode=RouteKind.COMMAND,
            account="alex",
            client_id=None,
            request=request,
            error=None,
        )
        result = await self.storage.accept(intake, limits=LIMITS, reply_rate_per_hour=0, now=now)
        assert result.error is None
        if self.dispatcher is not None:
            self.dispatcher.wake()
        return result.request_id

    async def detail(self, request_id: str) -> RequestDetail:
        detail = await self.storage.show_request(request_id)
        assert detail is not None
        return detail

    async def wait_states(
        self, request_id: str, done: Callable[[list[SmsState]], bool], timeout_s: float = 10.0
    ) -> RequestDetail:
        deadline = time.monotonic() + timeout_s
        while True:
            detail = await self.detail(request_id)
            if done([s.state for s in detail.sms]):
                return detail
            if time.monotonic() > deadline:
                raise AssertionError(f"states still {[s.state for s in detail.sms]}")
            await asyncio.sleep(0.02)


def all_in(*states: SmsState) -> Callable[[list[SmsState]], bool]:
    return lambda current: bool(current) and all(s in states for s in current)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    storage = SqliteStorage(tmp_path / "delivery.db")
    await storage.open()
    h = Harness(storage)
    yield h
    if h.dispatcher is not None:
        await h.dispatcher.stop(2)
    await storage.close()


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[], Awaitable[FakeProviderServer]]]:
    started: list[FakeProviderServer] = []

    async def make() -> FakeProviderServer:
        srv = await FakeProviderServer(username=USER, password=PASSWORD).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        await srv.stop()


Servers = Callable[[], Awaitable[FakeProviderServer]]


async def test_sent_with_the_right_parameters(harness: Harness, servers: Servers) -> None:
    """One SMS reaches the provider with text, sender and number, and ends `sent`."""
    srv = await servers()
    await harness.start(settings(provider("main", srv)))
    rid = await harness.enqueue(["+79991234567"], "disk full on db1")
    detail = await harness.wait_states(rid, all_in(SmsState.SENT))
    (req,) = srv.requests_for("miatel")
    assert (req.first("to"), req.first("text"), req.first("from")) == (
        "79991234567",
        "disk full on db1",
        "Alex",
    )
    assert detail.sms[0].provider == "main"
    assert detail.sms[0].provider_id


async def test_failover_and_failback(harness: Harness, servers: Servers) -> None:
    """With the first provider refusing connections traffic moves on, and comes back after."""
    first, second = await servers(), await servers()
    await first.set_down("refuse")
    await harness.start(settings(provider("first", first), provider("second", second)))
    rids = [await harness.enqueue([f"+7999100000{i}"], f"outage {i}") for i in range(4)]
    for rid in rids:
        detail = await harness.wait_states(rid, all_in(SmsState.SENT))
        assert detail.sms[0].provider == "second"
    assert len(second.requests_for("miatel")) == 4
    await first.set_down(None)
    await asyncio.sleep(0.6)  # breaker_reset_s: the next SMS is the probe
    probe = await harness.enqueue(["+79992000000"], "probe")
    assert (await harness.wait_states(probe, all_in(SmsState.SENT))).sms[0].provider == "first"
    back = [await harness.enqueue([f"+7999200000{i}"], f"back {i}") for i in range(1, 4)]
    for rid in back:
        await harness.wait_states(rid, all_in(SmsState.SENT))
    providers = [(await harness.detail(rid)).sms[0].provider for rid in back]
    assert providers == ["first"] * 3


async def test_503_for_the_first_requests(harness: Harness, servers: Servers) -> None:
    """A provider answering 503 a few times: the SMS is retried and sent, attempts recorded."""
    srv = await servers()
    srv.faults.fail_first = 2
    await harness.start(settings(provider("main", srv), breaker_reset_s=0.1))
    rid = await harness.enqueue(["+79991234567"])
    detail = await harness.wait_states(rid, all_in(SmsState.SENT))
    attempts = detail.sms[0].attempts
    assert attempts[-1].outcome == "sent"
    assert [a.outcome for a in attempts[:-1]] == ["temporary"] * (len(attempts) - 1)
    assert sum("503" in a.answer or "unavailable" in a.answer for a in attempts) == 2
    assert [r.status for r in srv.requests_for("miatel")] == [503, 503, 202]


async def test_429_retry_after(harness: Harness, servers: Servers) -> None:
    """A 429 with Retry-After: 1 delays the next attempt by at least a second."""
    srv = await servers()
    srv.faults.throttle = 1
    srv.faults.retry_after = "1"
    await harness.start(settings(provider("main", srv)))
    rid = await harness.enqueue(["+79991234567"])
    await harness.wait_states(rid, all_in(SmsState.SENT))
    first, second = srv.requests_for("miatel")
    assert first.status == 429
    assert second.at - first.at >= 0.95


async def test_expiry_after_validity(harness: Harness, servers: Servers) -> None:
    """A provider down for longer than validity_s: the SMS ends `expired`."""
    srv = await servers()
    await srv.set_down("503")
    short = DeliverySettings(validity_s=1.0, retry_first_s=0.1, retry_max_s=0.3, lease_s=5.0)
    await harness.start(settings(provider("main", srv), delivery=short, breaker_reset_s=0.1))
    rid = await harness.enqueue(["+79991234567"])
    detail = await harness.wait_states(rid, all_in(SmsState.EXPIRED), timeout_s=10)
    assert len(detail.sms[0].attempts) >= 2


async def test_wrong_credentials_wait_for_the_fix(harness: Harness, servers: Servers) -> None:
    """Credentials refused: a provider fault (SPEC §4), not the SMS's. Nothing fails; the
    breaker opens at the first refusal, logged at error level without the password; once a
    reload brings the right password, every SMS is sent."""
    srv = await servers()
    with capture_logs() as logs:
        dispatcher = await harness.start(settings(provider("main", srv, password="wrong")))
        rid = await harness.enqueue(["+79991234567", "+79991234568"])
        deadline = time.monotonic() + 10
        while len(srv.requests_for("miatel")) < 2:
            assert time.monotonic() < deadline, "the provider was not tried"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.6)
        detail = await harness.detail(rid)
        assert all(s.state in (SmsState.SCHEDULED, SmsState.SENDING) for s in detail.sms)
        good = settings(provider("main", srv))
        dispatcher.reload(good, build_providers(good.providers))
        await harness.wait_states(rid, all_in(SmsState.SENT))
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors
    assert all(e["provider"] == "main" for e in errors)
    assert all("wrong" not in str(e) for e in logs)  # the password never logged


async def test_rejected_number_fails_others_sent(harness: Harness, servers: Servers) -> None:
    """In a jsonapi batch, the number the provider rejects fails; the rest are sent."""
    srv = await servers()
    srv.faults.reject_numbers = {"+79990000002"}
    await harness.start(settings(provider("bulk", srv, kind="jsonapi", max_recipients=10)))
    rid = await harness.enqueue(["+79990000001", "+79990000002", "+79990000003"])
    detail = await harness.wait_states(rid, all_in(SmsState.SENT, SmsState.FAILED))
    assert [s.state for s in detail.sms] == [SmsState.SENT, SmsState.FAILED, SmsState.SENT]
    assert len(srv.requests_for("jsonapi")) == 1


async def test_scheduled_rows_go_at_their_time(harness: Harness, servers: Servers) -> None:
    """Rows due in the future reach the provider at their due time, not before."""
    srv = await servers()
    await harness.start(settings(provider("main", srv)))
    due = datetime.now(UTC) + timedelta(seconds=1.2)
    rid = await harness.enqueue(["+79991234567"], "later", due=due)
    now_rid = await harness.enqueue(["+79991234568"], "now")
    await harness.wait_states(now_rid, all_in(SmsState.SENT))
    assert [s.state for s in (await harness.detail(rid)).sms] == [SmsState.SCHEDULED]
    await harness.wait_states(rid, all_in(SmsState.SENT))
    later = [r for r in srv.requests_for("miatel") if r.first("text") == "later"]
    assert later[0].at >= due.timestamp()
    assert later[0].at - due.timestamp() < 1.0


async def test_scheduled_for_tomorrow_with_a_fake_clock(harness: Harness, servers: Servers) -> None:
    """A row due tomorrow is sent once the dispatcher's clock says tomorrow."""
    srv = await servers()
    offset = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + offset[0]

    conf = settings(provider("main", srv))
    dispatcher = Dispatcher(
        harness.storage, build_providers(conf.providers), conf, clock=clock, owner="t"
    )
    harness.dispatcher = dispatcher
    await dispatcher.start()
    rid = await harness.enqueue(["+79991234567"], due=datetime.now(UTC) + timedelta(days=1))
    assert await dispatcher.idle_timeout() == pytest.approx(5.0)  # capped by the lease
    offset[0] = timedelta(days=1, seconds=1)
    dispatcher.wake()
    await harness.wait_states(rid, all_in(SmsState.SENT))


async def test_flash_reaches_only_a_carrier(harness: Harness, servers: Servers) -> None:
    """A flash SMS skips miatel (format 0 only) and goes to smsc with flash=1."""
    srv = await servers()
    await harness.start(settings(provider("miatel", srv), provider("smsc", srv, kind="smsc")))
    rid = await harness.enqueue(["+79991234567"], "flash!", fmt=Format.FLASH)
    await harness.wait_states(rid, all_in(SmsState.SENT))
    assert srv.requests_for("miatel") == []
    (req,) = srv.requests_for("smsc")
    assert req.first("flash") == "1"


async def test_mail_to_provider_end_to_end(start_daemon: DaemonFactory, servers: Servers) -> None:
    """A command mail over SMTP becomes a request at the provider and a `sent` row."""
    srv = await servers()
    daemon: Daemon = await start_daemon(
        {
            "providers": [
                {
                    "name": "main",
                    "type": "miatel",
                    "url": srv.url("miatel"),
                    "username": USER,
                    "password": PASSWORD,
                }
            ],
            "routing": {"default": ["main"]},
        }
    )
    code, message = await daemon.send(command("89991234567", "server down", options=",,Alex"))
    assert code == 250, message
    rid = message.rsplit("ID - ", 1)[-1].strip()
    deadline = time.monotonic() + 5
    for _ in range(500):
        if srv.requests_for("miatel"):
            break
        await asyncio.sleep(0.01)
    (req,) = srv.requests_for("miatel")
    assert (req.first("to"), req.first("text"), req.first("from")) == (
        "79991234567",
        "server down",
        "Alex",
    )
    while time.monotonic() < deadline:
        detail = await daemon.detail(rid)
        if detail.sms[0].state is SmsState.SENT:
            break
        await asyncio.sleep(0.01)
    assert detail.sms[0].state is SmsState.SENT
