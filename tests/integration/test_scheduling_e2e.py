"""Scheduled mail, failover and expiry end to end: SMTP in, a fake provider on loopback out.

Each test runs a real in-process gateway (SQLite, the dispatcher, the reply
mailer) on 127.0.0.1:0, sends it a command mail with aiosmtplib and watches
what reaches a :class:`~tests.fakes.FakeProviderServer`. The scheduling tests
run the gateway on a :class:`~tests.integration.conftest.FakeClock` standing
still: they move it to one second before the due time (the provider has seen
nothing, the row is still ``scheduled``) and then to the due time (the request
arrives and the row ends ``sent``), so no test waits for a minute to pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.models import SmsState
from mailbridge.storage.base import RequestDetail
from tests.fakes import FakeProviderServer

from .conftest import (
    SENDER,
    ClockedDaemonFactory,
    Daemon,
    DaemonFactory,
    FakeClock,
    Smarthost,
    command,
)

USER, PASSWORD = "client", "pw"
#: Thursday 14 March 2030, 06:00 UTC = 09:00 in Moscow: where the fake clock starts.
T0 = datetime(2030, 3, 14, 6, 0, tzinfo=UTC)

Servers = Callable[[], Awaitable[FakeProviderServer]]


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    """Start fake providers on loopback (credentials checked); all stopped at the end."""
    started: list[FakeProviderServer] = []

    async def make() -> FakeProviderServer:
        srv = await FakeProviderServer(username=USER, password=PASSWORD).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        await srv.stop()


def provider(name: str, srv: FakeProviderServer, kind: str = "miatel") -> dict[str, Any]:
    """A ``[[providers]]`` table pointing at ``srv``."""
    return {
        "name": name,
        "type": kind,
        "url": srv.url(kind),
        "username": USER,
        "password": PASSWORD,
        "timeout_s": 2.0,
        "connect_timeout_s": 0.5,
    }


async def submit(daemon: Daemon, line: str) -> str:
    """Send one command mail; the request ID of its ``OK`` answer."""
    code, message = await daemon.send(line)
    assert code == 250, message
    assert "OK - " in message, message
    return message.rsplit("ID - ", 1)[-1].strip()


async def wait_detail(
    daemon: Daemon,
    request_id: str,
    done: Callable[[RequestDetail], bool],
    timeout_s: float = 5.0,
) -> RequestDetail:
    """Poll ``queue show`` data until ``done`` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        detail = await daemon.detail(request_id)
        if done(detail):
            return detail
        if time.monotonic() > deadline:
            states = [s.state for s in detail.sms]
            replies = [(r.state, r.body) for r in detail.replies]
            raise AssertionError(f"request {request_id}: states {states}, replies {replies}")
        await asyncio.sleep(0.01)


def all_in(*states: SmsState) -> Callable[[RequestDetail], bool]:
    return lambda d: bool(d.sms) and all(s.state in states for s in d.sms)


# --- scheduled mail on a fake clock ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One scheduled command and what must reach the provider."""

    time: str  # the <time>,<tz> field
    due: datetime  # when it must be sent (UTC)
    kind: str = "miatel"
    options: str = ",,Alex"
    text: str = "backup done"
    expect: tuple[tuple[str, str], ...] = ()  # wire fields beyond text/sender/recipient


CASES = {
    # +m: m minutes from now
    "relative +1": Case(time="+1", due=T0 + timedelta(minutes=1)),
    # 09:00 in Moscow is outside 10-12: the next 10:00 Moscow = 07:00 UTC
    "window outside": Case(time="10-12", due=datetime(2030, 3, 14, 7, 0, tzinfo=UTC)),
    # tz -1 (UTC+2): 08:00 local is outside 10-12; 10:00 UTC+2 = 08:00 UTC
    "window with tz": Case(time="10-12,-1", due=datetime(2030, 3, 14, 8, 0, tzinfo=UTC)),
    # 14.03.30 12:00 at tz +2 (UTC+5) = 07:00 UTC (without the tz it would be 09:00 UTC)
    "date with tz, flash via smsc": Case(
        time="1403301200,2",
        due=datetime(2030, 3, 14, 7, 0, tzinfo=UTC),
        kind="smsc",
        options=",1,Alex",
        text="flash at noon",
        expect=(("flash", "1"), ("fmt", "3"), ("charset", "utf-8")),
    ),
    # 0<unix ts>: an absolute instant, no zone involved
    "unix timestamp": Case(time=f"0{int(T0.timestamp()) + 90}", due=T0 + timedelta(seconds=90)),
}


def wire_fields(kind: str, req: Any) -> tuple[str | None, str | None, str | None]:
    """(recipient, text, sender) as the wire format of ``kind`` names them."""
    if kind == "smsc":
        return req.first("phones"), req.first("mes"), req.first("sender")
    return req.first("to"), req.first("text"), req.first("from")


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_scheduled_mail_goes_at_its_time(
    start_clocked_daemon: ClockedDaemonFactory, servers: Servers, case: Case
) -> None:
    """A scheduled command mail reaches the provider at its due time, not before, then `sent`."""
    srv = await servers()
    clock = FakeClock(T0)
    daemon = await start_clocked_daemon(
        {"providers": [provider("up", srv, case.kind)], "routing": {"default": ["up"]}},
        clock=clock,
    )
    dispatcher = daemon.gateway.dispatcher
    assert dispatcher is not None
    line = command("89991234567", case.text, time=case.time, options=case.options)
    rid = await submit(daemon, line)

    detail = await daemon.detail(rid)
    assert [(s.state, s.due) for s in detail.sms] == [(SmsState.SCHEDULED, case.due)]

    # one second before: nothing is claimable, nothing reaches the provider
    clock.set(case.due - timedelta(seconds=1))
    dispatcher.wake()
    assert await dispatcher.run_once() == 0
    await asyncio.sleep(0.05)  # let the woken loop look too
    assert srv.requests == []
    assert [s.state for s in (await daemon.detail(rid)).sms] == [SmsState.SCHEDULED]

    # at the due time: sent, with the right parameters
    clock.set(case.due)
    dispatcher.wake()
    detail = await wait_detail(daemon, rid, all_in(SmsState.SENT))
    (req,) = srv.requests_for(case.kind)
    recipient = "+79991234567" if case.kind == "smsc" else "79991234567"
    assert wire_fields(case.kind, req) == (recipient, case.text, "Alex")
    for key, value in case.expect:
        assert req.first(key) == value, key
    if case.kind == "smsc":
        assert req.first("flash") == "1"
    assert detail.sms[0].provider == "up"
    assert detail.sms[0].provider_id


async def test_window_inside_goes_at_once(
    start_clocked_daemon: ClockedDaemonFactory, servers: Servers
) -> None:
    """``h1-h2`` with the local time inside the window is due at once."""
    srv = await servers()
    clock = FakeClock(T0)  # 09:00 Moscow
    daemon = await start_clocked_daemon(
        {"providers": [provider("up", srv)], "routing": {"default": ["up"]}}, clock=clock
    )
    rid = await submit(daemon, command("89991234567", "inside", time="8-10"))
    detail = await wait_detail(daemon, rid, all_in(SmsState.SENT))
    assert detail.sms[0].due == T0
    (req,) = srv.requests_for("miatel")
    assert req.first("text") == "inside"


# --- failover, fail-back and expiry on the real clock -----------------------------------


async def test_failover_and_failback_through_smtp(
    start_daemon: DaemonFactory, servers: Servers
) -> None:
    """First provider refusing connections: mail goes through the second; back when it recovers."""
    first, second = await servers(), await servers()
    await first.set_down("refuse")
    daemon = await start_daemon(
        {
            "providers": [provider("first", first), provider("second", second)],
            "routing": {
                "default": ["first", "second"],
                "breaker_failures": 2,
                "breaker_reset_s": 0.5,
            },
        }
    )
    down = [await submit(daemon, command(f"8999100000{i}", f"outage {i}")) for i in range(3)]
    for rid in down:
        detail = await wait_detail(daemon, rid, all_in(SmsState.SENT))
        assert detail.sms[0].provider == "second"
    assert sorted(r.first("text") or "" for r in second.requests_for("miatel")) == [
        f"outage {i}" for i in range(3)
    ]
    assert first.requests == []

    await first.set_down(None)
    await asyncio.sleep(0.6)  # breaker_reset_s: the next SMS is the probe
    back = [await submit(daemon, command(f"8999200000{i}", f"back {i}")) for i in range(3)]
    providers = [
        (await wait_detail(daemon, rid, all_in(SmsState.SENT))).sms[0].provider for rid in back
    ]
    assert providers == ["first"] * 3
    assert sorted(r.first("text") or "" for r in first.requests_for("miatel")) == [
        f"back {i}" for i in range(3)
    ]
    assert len(second.requests_for("miatel")) == 3


async def test_expiry_sends_the_followup_reply(
    start_daemon: DaemonFactory, servers: Servers, smarthost: Smarthost
) -> None:
    """Provider down past validity_s: `expired`, and a test=1 sender gets ERROR = 8 by mail."""
    srv = await servers()
    await srv.set_down("503")
    daemon = await start_daemon(
        {
            "providers": [provider("up", srv)],
            "routing": {"default": ["up"], "breaker_failures": 2, "breaker_reset_s": 0.1},
            "delivery": {"validity_s": 1.0, "retry_first_s": 0.1, "retry_max_s": 0.3},
        }
    )
    rid = await submit(daemon, command("89991234567", "never", options=",,,1"))
    detail = await wait_detail(daemon, rid, all_in(SmsState.EXPIRED), timeout_s=10)
    assert detail.sms[0].attempts, "the provider was tried before the SMS expired"
    assert all(r.status == 503 for r in srv.requests_for("miatel"))

    ok, followup = await smarthost.wait_for(2, timeout_s=10)
    assert ok.message.get_content().strip() == f"OK - 1 SMS, ID - {rid}"
    assert followup.message.get_content().strip() == (
        f"ERROR = 8 (Message cannot be delivered), ID - {rid}"
    )
    assert (followup.mail_from, followup.rcpt_tos) == ("<>", [SENDER])
    detail = await wait_detail(
        daemon, rid, lambda d: [r.state for r in d.replies] == ["sent", "sent"]
    )
    assert [r.body for r in detail.replies] == [
        f"OK - 1 SMS, ID - {rid}",
        f"ERROR = 8 (Message cannot be delivered), ID - {rid}",
    ]
