"""The daemon delivering through the fake SMSC: mail in, submit_sm out, one fault at a time."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailbridge.core.encoding import split_text
from mailbridge.models import SmsState
from mailbridge.providers.smpp_codec import decode_text
from mailbridge.storage.base import SmsView
from tests.fakes.smsc import ESME_RINVDSTADR, ESME_RINVPASWD, FakeSmsc

from .conftest import Daemon, DaemonFactory, command, merge, settings_from

SMPP_PASSWORD = "smpp-pw"


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    async with FakeSmsc(password=SMPP_PASSWORD) as server:
        yield server


def smpp_provider(smsc: FakeSmsc, **keys: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "smpp",
        "type": "smpp",
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "client",
        "password": SMPP_PASSWORD,
        "timeout_s": 1.0,
        "connect_timeout_s": 1.0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.3,
    }
    fields.update(keys)
    return fields


def overrides(smsc: FakeSmsc, *extra: dict[str, Any], **keys: Any) -> dict[str, Any]:
    names = ["smpp"] + [p["name"] for p in extra]
    return {
        "providers": [smpp_provider(smsc, **keys), *extra],
        "routing": {"default": names, "breaker_failures": 1, "breaker_reset_s": 0.3},
        "delivery": {"retry_first_s": 0.1, "retry_max_s": 0.3, "lease_s": 5.0},
        "limits": {"duplicate_max": 1000, "flood_max": 1000},
    }


async def submit(daemon: Daemon, text: str = "hello", phones: str = "+79991234567") -> str:
    code, answer = await daemon.send(command(phones=phones, mes=text))
    assert code == 250, answer
    found = re.search(r"OK - \d+ SMS, ID - (\S+)", answer)
    assert found, answer
    return found.group(1)


async def wait_sms(
    daemon: Daemon, request_id: str, states: set[SmsState], timeout_s: float = 10.0
) -> list[SmsView]:
    deadline = time.monotonic() + timeout_s
    while True:
        detail = await daemon.detail(request_id)
        if detail.sms and all(s.state in states for s in detail.sms):
            return list(detail.sms)
        assert time.monotonic() < deadline, [(s.state, s.error) for s in detail.sms]
        await asyncio.sleep(0.05)


async def test_delivers_and_keeps_the_message_id(
    start_daemon: DaemonFactory, smsc: FakeSmsc
) -> None:
    """A mail becomes one submit_sm; the row is sent with the SMSC's message_id."""
    daemon = await start_daemon(overrides(smsc))
    request_id = await submit(daemon)
    [row] = await wait_sms(daemon, request_id, {SmsState.SENT})
    [got] = smsc.accepted
    assert (got.destination, got.source, got.payload) == ("79991234567", "Alex", b"hello")
    assert (row.provider, row.provider_id) == ("smpp", got.message_id)


async def test_long_text_in_parts(start_daemon: DaemonFactory, smsc: FakeSmsc) -> None:
    """A long text goes as the core's parts with a UDH; the row keeps every part's id."""
    daemon = await start_daemon(overrides(smsc))
    text = "Дежурному: сервер db-1 недоступен, проверьте репликацию. " * 4
    request_id = await submit(daemon, text)
    [row] = await wait_sms(daemon, request_id, {SmsState.SENT})
    parts = split_text(text.strip()).parts
    assert len(smsc.accepted) == len(parts) == row.parts
    assert [s.concat[1:] if s.concat else None for s in smsc.accepted] == [
        (len(parts), i + 1) for i in range(len(parts))
    ]
    assert "".join(decode_text(s.payload, s.data_coding) for s in smsc.accepted) == text.strip()
    assert row.provider_id == ",".join(s.message_id or "" for s in smsc.accepted)


@pytest.mark.parametrize("fault", ["throttle", "queue_full", "syserr", "nack"])
async def test_temporary_answers_then_sent(
    start_daemon: DaemonFactory, smsc: FakeSmsc, fault: str
) -> None:
    """Throttling, queue full, system errors and generic_nack are retried until taken."""
    setattr(smsc.faults, fault, 2)
    daemon = await start_daemon(overrides(smsc))
    request_id = await submit(daemon)
    [row] = await wait_sms(daemon, request_id, {SmsState.SENT})
    assert len(smsc.submits) == 3
    assert row.provider_id == smsc.accepted[0].message_id


async def test_invalid_address_fails(start_daemon: DaemonFactory, smsc: FakeSmsc) -> None:
    """An invalid destination fails that SMS at once."""
    smsc.faults.reject = {"79990000666": ESME_RINVDSTADR}
    daemon = await start_daemon(overrides(smsc))
    request_id = await submit(daemon, phones="+79990000666")
    [row] = await wait_sms(daemon, request_id, {SmsState.FAILED})
    assert len(smsc.submits) == 1
    assert "ESME_RINVDSTADR" in (row.error or "")


async def test_connection_dropped_with_submits_in_flight(
    start_daemon: DaemonFactory, smsc: FakeSmsc
) -> None:
    """Submits unanswered when the connection drops go again after the reconnect."""
    daemon = await start_daemon(overrides(smsc))
    smsc.faults.silent = True
    ids = [await submit(daemon, f"alert {i}", phones=f"+7999000000{i}") for i in range(3)]
    await smsc.wait_for(lambda: len(smsc.submits) == 3, what="submits in flight")
    smsc.faults.silent = False
    smsc.drop_all()
    for request_id in ids:
        await wait_sms(daemon, request_id, {SmsState.SENT})
    assert {s.destination for s in smsc.accepted} == {f"7999000000{i}" for i in range(3)}
    assert len(smsc.binds) >= 2


async def test_slow_responses(start_daemon: DaemonFactory, smsc: FakeSmsc) -> None:
    """Responses slower than timeout_s are retried; the SMS is sent in the end."""
    smsc.faults.delay_s = 1.5
    daemon = await start_daemon(overrides(smsc))
    request_id = await submit(daemon)
    await smsc.wait_for(lambda: len(smsc.submits) >= 1, what="a submit")
    await asyncio.sleep(1.2)
    smsc.faults.delay_s = 0.1
    [row] = await wait_sms(daemon, request_id, {SmsState.SENT})
    assert row.provider_id in {s.message_id for s in smsc.accepted}


async def test_refused_bind_fails_over(
    start_daemon: DaemonFactory, smsc: FakeSmsc, tmp_path: Any
) -> None:
    """A refused bind is the provider's fault: the SMS goes to the next provider of its route."""
    smsc.faults.bind_status = ESME_RINVPASWD
    backup = {"name": "backup", "type": "file", "path": str(tmp_path / "backup.jsonl")}
    daemon = await start_daemon(overrides(smsc, backup))
    request_id = await submit(daemon)
    [row] = await wait_sms(daemon, request_id, {SmsState.SENT})
    assert row.provider == "backup"
    assert smsc.submits == []


async def test_refused_bind_waits_for_the_fix(start_daemon: DaemonFactory, smsc: FakeSmsc) -> None:
    """With no other provider, SMS wait (not failed) until a reload fixes the password."""
    daemon = await start_daemon(overrides(smsc, password="wrong"))
    request_id = await submit(daemon)
    await smsc.wait_for(lambda: len(smsc.binds) >= 2, what="refused binds")
    await asyncio.sleep(0.5)
    detail = await daemon.detail(request_id)
    assert all(s.state in (SmsState.SCHEDULED, SmsState.SENDING) for s in detail.sms)
    assert all(a.outcome != "permanent" for s in detail.sms for a in s.attempts)
    daemon.gateway.reload(settings_from(merge(daemon.doc, overrides(smsc))))
    [row] = await wait_sms(daemon, request_id, {SmsState.SENT}, timeout_s=15)
    assert row.provider_id == smsc.accepted[0].message_id


async def test_stop_unbinds(start_daemon: DaemonFactory, smsc: FakeSmsc) -> None:
    """Stopping the gateway unbinds cleanly."""
    daemon = await start_daemon(overrides(smsc))
    request_id = await submit(daemon)
    await wait_sms(daemon, request_id, {SmsState.SENT})
    await daemon.gateway.stop(drain_s=1.0)
    assert smsc.unbinds == 1


async def test_reload_keeps_an_unchanged_session(
    start_daemon: DaemonFactory, smsc: FakeSmsc
) -> None:
    """SIGHUP with the smpp provider unchanged keeps its bound session; a change rebinds."""
    daemon = await start_daemon(overrides(smsc))
    await wait_sms(daemon, await submit(daemon), {SmsState.SENT})
    daemon.gateway.reload(settings_from(daemon.doc))
    await wait_sms(daemon, await submit(daemon, "again"), {SmsState.SENT})
    assert len(smsc.binds) == 1
    assert smsc.unbinds == 0
    changed = merge(daemon.doc, overrides(smsc, window=5))
    daemon.gateway.reload(settings_from(changed))
    await wait_sms(daemon, await submit(daemon, "third"), {SmsState.SENT})
    await smsc.wait_for(lambda: smsc.unbinds == 1, what="the old session unbound")
    assert len(smsc.binds) == 2
