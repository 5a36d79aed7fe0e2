"""The provider adapters against the fake provider server, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from mailbridge.errors import (
    PermanentProviderError,
    ProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format
from mailbridge.providers import Outbound, Provider, Sent, build_provider
from mailbridge.settings import ProviderSettings
from tests.fakes import FakeProviderServer

ROOT = Path(__file__).resolve().parents[2]
USER = "client"
PASSWORD = "s3cr&t pw"
KINDS = ["miatel", "jsonapi", "smsc"]

Make = Callable[..., Provider]


def sms(sms_id: int = 1, recipient: str = "+79991234567", **overrides: object) -> Outbound:
    fields: dict[str, object] = {
        "sms_id": sms_id,
        "request_id": "77",
        "recipient": recipient,
        "text": "hello there",
        "sender": "Alex",
        "format": Format.SMS,
    }
    fields.update(overrides)
    return Outbound(**fields)  # type: ignore[arg-type]


async def outcome(provider: Provider, batch: list[Outbound]) -> list[Sent | ProviderError]:
    """The results, or the raised provider error as the result of every item."""
    try:
        return await provider.send(batch)
    except ProviderError as exc:
        return [exc] * len(batch)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[FakeProviderServer]:
    """A fake provider checking credentials, logging to a file."""
    async with FakeProviderServer(
        username=USER, password=PASSWORD, log_path=tmp_path / "requests.jsonl"
    ) as srv:
        yield srv


@pytest.fixture
async def make(server: FakeProviderServer) -> AsyncIterator[Make]:
    """Build adapters aimed at ``server``; all closed at the end."""
    made: list[Provider] = []

    def build(kind: str, **overrides: object) -> Provider:
        fields: dict[str, object] = {
            "name": kind,
            "type": kind,
            "url": server.url(kind),
            "username": USER,
            "password": PASSWORD,
            "timeout_s": 2.0,
            "connect_timeout_s": 1.0,
            "max_recipients": 5,
        }
        fields.update(overrides)
        provider = build_provider(ProviderSettings(**fields))  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


@pytest.mark.parametrize("kind", KINDS)
class TestEachWireFormat:
    async def test_success(self, server: FakeProviderServer, make: Make, kind: str) -> None:
        """A plain SMS is accepted and the server saw the wire format's fields."""
        [result] = await make(kind).send([sms(text="Привет, мир")])
        assert isinstance(result, Sent)
        assert result.parts == 1
        [request] = server.requests_for(kind)
        expected = {
            "miatel": ("GET", "to", "79991234567", "text"),
            "jsonapi": ("POST", "destination_number", "79991234567", "body"),
            "smsc": ("POST", "phones", "+79991234567", "mes"),
        }[kind]
        assert request.method == expected[0]
        assert request.first(expected[1]) == expected[2]
        assert request.first(expected[3]) == "Привет, мир"

    async def test_wrong_credentials(
        self, server: FakeProviderServer, make: Make, kind: str
    ) -> None:
        """A refused password is a provider fault (not the SMS's), raised, and never quoted."""
        provider = make(kind, password="wrong-" + PASSWORD)
        with pytest.raises(ProviderUnavailableError) as info:
            await provider.send([sms()])
        text = f"{info.value} {info.value.provider_answer}"
        assert PASSWORD not in text
        if kind == "jsonapi":
            assert "authentication" in str(info.value)

    async def test_rejected_number(self, server: FakeProviderServer, make: Make, kind: str) -> None:
        """A number the provider refuses fails that SMS alone."""
        server.faults.reject_numbers = {"+79990000666"}
        [result] = await make(kind).send([sms(recipient="+79990000666")])
        assert isinstance(result, PermanentProviderError)

    async def test_first_requests_fail(
        self, server: FakeProviderServer, make: Make, kind: str
    ) -> None:
        """503s are temporary; the next request goes through."""
        server.faults.fail_first = 2
        provider = make(kind)
        first = await outcome(provider, [sms()])
        second = await outcome(provider, [sms()])
        third = await outcome(provider, [sms()])
        assert isinstance(first[0], TemporaryProviderError)
        assert isinstance(second[0], TemporaryProviderError)
        assert isinstance(third[0], Sent)
        accepted = 202 if kind == "miatel" else 200
        assert [r.status for r in server.requests_for(kind)] == [503, 503, accepted]

    async def test_retry_after_seconds(
        self, server: FakeProviderServer, make: Make, kind: str
    ) -> None:
        """429 with Retry-After in seconds gives the hint."""
        server.faults.throttle = 1
        server.faults.retry_after = "3"
        [result] = await outcome(make(kind), [sms()])
        assert isinstance(result, TemporaryProviderError)
        assert result.retry_after_s == 3.0

    async def test_retry_after_date(
        self, server: FakeProviderServer, make: Make, kind: str
    ) -> None:
        """429 with Retry-After as an HTTP-date gives the seconds until then."""
        server.faults.throttle = 1
        when = datetime.now(UTC) + timedelta(seconds=30)
        server.faults.retry_after = format_datetime(when, usegmt=True)
        [result] = await outcome(make(kind), [sms()])
        assert isinstance(result, TemporaryProviderError)
        assert result.retry_after_s is not None
        assert 0.0 <= result.retry_after_s <= 31.0

    async def test_slow_answer(self, server: FakeProviderServer, make: Make, kind: str) -> None:
        """An answer later than the provider's timeout is temporary."""
        server.faults.delay_s = 0.5
        [result] = await outcome(make(kind, timeout_s=0.1), [sms()])
        assert isinstance(result, TemporaryProviderError)

    async def test_dripping_body(self, server: FakeProviderServer, make: Make, kind: str) -> None:
        """A body dripped past the deadline is temporary; a quick drip is read whole."""
        server.faults.drip_s = 0.002
        [quick] = await outcome(make(kind), [sms()])
        assert isinstance(quick, Sent)
        server.faults.drip_s = 0.1
        [slow] = await outcome(make(kind, timeout_s=0.15), [sms()])
        assert isinstance(slow, TemporaryProviderError)

    async def test_connection_reset(
        self, server: FakeProviderServer, make: Make, kind: str
    ) -> None:
        """A connection closed without an answer is temporary; the pool recovers.

        The transport re-sends a GET (miatel) once when a kept-alive connection
        drops, as HTTP clients do for idempotent methods; a second drop in a row
        reaches the adapter. A POST is never re-sent by the transport.
        """
        provider = make(kind)
        assert isinstance((await outcome(provider, [sms()]))[0], Sent)  # a kept-alive connection
        server.faults.reset = 2 if kind == "miatel" else 1
        [broken] = await outcome(provider, [sms()])
        assert isinstance(broken, TemporaryProviderError)
        [again] = await outcome(provider, [sms()])
        assert isinstance(again, Sent)

    async def test_malformed_body(self, server: FakeProviderServer, make: Make, kind: str) -> None:
        """A 2xx body that cannot be read is temporary (the SMS may have gone)."""
        server.faults.malformed = 1
        [result] = await outcome(make(kind), [sms()])
        assert isinstance(result, TemporaryProviderError)
        assert "unreadable" in str(result)

    async def test_down_503(self, server: FakeProviderServer, make: Make, kind: str) -> None:
        """A server answering 503 to everything is temporary."""
        await server.set_down("503")
        [result] = await outcome(make(kind), [sms()])
        assert isinstance(result, TemporaryProviderError)

    async def test_down_refusing(self, server: FakeProviderServer, make: Make, kind: str) -> None:
        """A refused connection is temporary; once back up, sending works."""
        provider = make(kind)
        await server.set_down("refuse")
        [refused] = await outcome(provider, [sms()])
        assert isinstance(refused, TemporaryProviderError)
        await server.set_down(None)
        [result] = await outcome(provider, [sms()])
        assert isinstance(result, Sent)


class TestJsonApiBatch:
    async def test_batch_with_a_rejected_number(
        self, server: FakeProviderServer, make: Make
    ) -> None:
        """Three recipients in one request; the refused one fails alone."""
        server.faults.reject_numbers = {"79990000002"}
        batch = [sms(i, f"+7999000000{i}", text=f"t{i}") for i in (1, 2, 3)]
        results = await make("jsonapi").send(batch)
        assert [type(r) for r in results] == [Sent, PermanentProviderError, Sent]
        [request] = server.requests_for("jsonapi")
        assert request.query["request_id"] == ["mb-1", "mb-2", "mb-3"]
        assert request.query["body"] == ["t1", "t2", "t3"]

    async def test_ping(self, server: FakeProviderServer, make: Make) -> None:
        """Format 6 goes out with stealth_ping=1."""
        [result] = await make("jsonapi").send([sms(format=Format.PING, text="")])
        assert isinstance(result, Sent)
        assert server.requests_for("jsonapi")[0].query["stealth_ping"] == ["1"]


class TestServer:
    async def test_log_file(self, server: FakeProviderServer, make: Make, tmp_path: Path) -> None:
        """Every request is appended to the log as a JSON line."""
        await make("smsc").send([sms(format=Format.VIBER)])
        server.faults.reset = 1
        await outcome(make("jsonapi"), [sms()])
        logged = [
            json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()
        ]
        assert [(r["kind"], r["status"], r["fault"]) for r in logged] == [
            ("smsc", 200, None),
            ("jsonapi", None, "reset"),
        ]
        assert logged[0]["form"]["viber"] == ["1"]

    async def test_comes_back_by_itself(self, server: FakeProviderServer, make: Make) -> None:
        """``set_down(..., for_s=)`` restores the server after the delay."""
        provider = make("smsc")
        await server.set_down("refuse", for_s=0.1)
        [refused] = await outcome(provider, [sms()])
        assert isinstance(refused, TemporaryProviderError)
        for _ in range(100):
            if server.faults.down is None:
                break
            await asyncio.sleep(0.02)
        [result] = await outcome(provider, [sms()])
        assert isinstance(result, Sent)


async def _read_port(proc: asyncio.subprocess.Process) -> int:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    return int(line)


async def test_command_line_server(tmp_path: Path) -> None:
    """``python -m tests.fakes.provider_server`` serves, takes faults by HTTP, logs, stops."""
    log = tmp_path / "cli.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.provider_server", "--port", "0", "--log", str(log),
        "--username", USER, "--password", PASSWORD,
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        port = await _read_port(proc)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as control:
            answer = await control.post(
                f"{base}/_control/faults", json={"reject_numbers": ["+79990000666"]}
            )
            assert answer.status_code == 200
            provider = build_provider(
                ProviderSettings(
                    name="s", type="smsc", url=f"{base}/smsc/send.php",
                    username=USER, password=PASSWORD,
                )
            )  # fmt: skip
            try:
                results = [
                    *(await provider.send([sms(1)])),
                    *(await provider.send([sms(2, "+79990000666")])),
                ]
            finally:
                await provider.aclose()
            assert [type(r) for r in results] == [Sent, PermanentProviderError]
            recorded = (await control.get(f"{base}/_control/requests")).json()
            assert [r["fault"] for r in recorded] == [None, "number"]
    finally:
        proc.terminate()
        code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0
    assert len(log.read_text().splitlines()) == 2
