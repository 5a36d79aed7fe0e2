"""The ``[http]`` side of a real gateway: /metrics, /healthz, /readyz, the page, auth, leaks."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from mailbridge.core.passwords import hash_password
from tests.integration.conftest import (
    APIKEY,
    COMMAND_TO,
    PASSWORD,
    Daemon,
    DaemonFactory,
    command,
)

HTTP: dict[str, Any] = {"http": {"listen": ["127.0.0.1:0"]}}
TEXT = "Disk full on db7 zzqx-marker"  # must never appear on any endpoint
TOKEN = "metrics-t0ken-value"


def base_url(daemon: Daemon) -> str:
    host, port = daemon.gateway.http_addresses[0]
    return f"http://{host}:{port}"


async def get(
    daemon: Daemon, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url(daemon) + path, headers=headers or {}) as resp,
    ):
        return resp.status, await resp.text(), dict(resp.headers)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def wait_until_sent(daemon: Daemon, request_id: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        detail = await daemon.detail(request_id)
        if all(s.state.value == "sent" for s in detail.sms):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"request {request_id} not sent")


async def traffic(daemon: Daemon) -> str:
    """One good mail (sent), one ERROR = 7, one refused RCPT; the good one's ID."""
    code, message = await daemon.send(command(phones="+79991234567", mes=TEXT, id="41"))
    assert code == 250
    assert "OK - 1 SMS, ID - 41" in message
    code, message = await daemon.send(command(phones="12", mes=TEXT, id="42"))
    assert "ERROR = 7" in message
    code, _ = await daemon.send(command(mes=TEXT), rcpts=("nobody@elsewhere.test",))
    assert code == 550
    await wait_until_sent(daemon, "41")
    return "41"


class TestMetrics:
    async def test_counts_mails_attempts_and_queue(self, start_daemon: DaemonFactory) -> None:
        """/metrics counts the mails by result, the attempt, the transition and the queue."""
        daemon = await start_daemon(HTTP)
        await traffic(daemon)
        await asyncio.sleep(5.1)  # the queue figures are at most 5 s old
        status, text, headers = await get(daemon, "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert value(text, "mailbridge_mails_total", mode="command", result="ok") == 1
        assert value(text, "mailbridge_mails_total", mode="command", result="error_7") == 1
        assert value(text, "mailbridge_smtp_refused_total", stage="rcpt", code="550") == 1
        assert (
            value(text, "mailbridge_provider_attempts_total", provider="out", outcome="sent") == 1
        )
        assert (
            value(
                text,
                "mailbridge_sms_transitions_total",
                from_state="sending",
                to_state="sent",
                provider="out",
            )
            == 1
        )
        assert value(text, "mailbridge_queue_sms", state="sent") == 1
        assert value(text, "mailbridge_queue_sms", state="scheduled") == 0
        assert value(text, "mailbridge_sms_accept_delay_seconds_count", provider="out") == 1
        assert value(text, "mailbridge_storage_commit_duration_seconds_count") >= 3
        assert value(text, "mailbridge_smtp_sessions_open") == 0
        assert value(text, "mailbridge_build_info", python=_py(), version=_version()) == 1

    async def test_queue_read_at_most_every_few_seconds(self, start_daemon: DaemonFactory) -> None:
        """Scrapes in a row read storage once: the queue gauges come from a cache."""
        daemon = await start_daemon(HTTP)
        assert daemon.gateway.http is not None
        figures = daemon.gateway.http.figures
        for _ in range(5):
            status, _, _ = await get(daemon, "/metrics")
            assert status == 200
        assert figures.reads == 1

    async def test_promtool_accepts_a_real_scrape(
        self, start_daemon: DaemonFactory, tmp_path: Path
    ) -> None:
        """`promtool check metrics` finds nothing wrong with a scrape after traffic."""
        promtool = _tool("promtool")
        daemon = await start_daemon(HTTP)
        await traffic(daemon)
        _, text, _ = await get(daemon, "/metrics")
        proc = await asyncio.create_subprocess_exec(
            promtool,
            "check",
            "metrics",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate(text.encode())
        assert proc.returncode == 0, out.decode()
        assert out.decode().strip() == "", out.decode()  # no lint findings either


class TestHealth:
    async def test_healthz_and_readyz(self, start_daemon: DaemonFactory) -> None:
        """Both answer 200 with JSON on a healthy gateway."""
        daemon = await start_daemon(HTTP)
        status, text, headers = await get(daemon, "/healthz")
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(text)["status"] == "ok"
        status, text, _ = await get(daemon, "/readyz")
        body = json.loads(text)
        assert status == 200, body
        assert body["checks"]["storage"]["ok"] is True
        assert body["checks"]["listeners"]["ok"] is True
        assert body["checks"]["routes"]["routes"]["default"]["usable"] == ["out"]

    async def test_readyz_fails_when_a_route_has_no_provider(
        self, start_daemon: DaemonFactory
    ) -> None:
        """A provider that refuses connections opens its breaker: /readyz says 503, routes."""
        daemon = await start_daemon(
            {
                **HTTP,
                "providers": [
                    {
                        "name": "down",
                        "type": "miatel",
                        "url": "http://127.0.0.1:9/sendsms",
                        "username": "u",
                        "password": "provider-secret-pw",
                        "timeout_s": 1.0,
                        "connect_timeout_s": 0.5,
                    }
                ],
                "routing": {"default": ["down"], "breaker_failures": 1, "breaker_reset_s": 60.0},
            }
        )
        code, _ = await daemon.send(command(phones="+79991234567", mes=TEXT, id="7"))
        assert code == 250
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, text, _ = await get(daemon, "/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.1)
        body = json.loads(text)
        assert status == 503, body
        assert body["checks"]["routes"]["ok"] is False
        assert body["checks"]["storage"]["ok"] is True
        _, metrics, _ = await get(daemon, "/metrics")
        assert value(metrics, "mailbridge_provider_breaker_state", provider="down") == 2
        assert (
            value(
                metrics, "mailbridge_provider_attempts_total", provider="down", outcome="temporary"
            )
            >= 1
        )
        status, _, _ = await get(daemon, "/healthz")
        assert status == 200  # the process itself is fine

    async def test_readyz_fails_when_storage_is_gone(self, start_daemon: DaemonFactory) -> None:
        """Storage that cannot answer makes /readyz 503 with the storage check failed."""
        daemon = await start_daemon(HTTP)
        assert daemon.gateway.storage is not None
        assert daemon.gateway.http is not None
        storage = daemon.gateway.storage
        await storage.close()  # the gateway's own storage, closed under it
        daemon.gateway.http.figures._max_age_s = 0.0
        status, text, _ = await get(daemon, "/readyz")
        body = json.loads(text)
        assert status == 503, body
        assert body["checks"]["storage"]["ok"] is False
        await storage.open()


class TestAuth:
    async def test_bearer_token(self, start_daemon: DaemonFactory) -> None:
        """With token_hash, every path wants the token; a wrong one gets 401 too."""
        daemon = await start_daemon(
            {"http": {"listen": ["127.0.0.1:0"], "token_hash": hash_password(TOKEN)}}
        )
        for path in ("/", "/metrics", "/healthz", "/readyz", "/status.json"):
            status, text, headers = await get(daemon, path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert TOKEN not in text
        status, _, _ = await get(daemon, "/metrics", {"Authorization": "Bearer wrong"})
        assert status == 401
        for _ in range(2):  # the second time from the verified cache
            status, text, _ = await get(daemon, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
            assert status == 200
            assert "mailbridge_mails_total" in text

    async def test_basic_auth(self, start_daemon: DaemonFactory) -> None:
        """With username and password_hash, basic auth with both right is let in."""
        daemon = await start_daemon(
            {
                "http": {
                    "listen": ["127.0.0.1:0"],
                    "username": "prom",
                    "password_hash": hash_password("basic-pw"),
                }
            }
        )

        def basic(user: str, pw: str) -> dict[str, str]:
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

        assert (await get(daemon, "/healthz"))[0] == 401
        assert (await get(daemon, "/healthz", basic("prom", "nope")))[0] == 401
        assert (await get(daemon, "/healthz", basic("other", "basic-pw")))[0] == 401
        assert (await get(daemon, "/healthz", basic("prom", "basic-pw")))[0] == 200


class TestNoLeaks:
    async def test_no_secret_or_text_on_any_endpoint(self, start_daemon: DaemonFactory) -> None:
        """Passwords, API keys, provider passwords and message texts appear nowhere."""
        daemon = await start_daemon(HTTP)
        await traffic(daemon)
        # an API-key request and a wrong password: refusals that carry credentials
        await daemon.send(command(login="", psw=APIKEY, phones="+79991234567", mes=TEXT, id="51"))
        await daemon.send(command(psw="wrong-" + PASSWORD, phones="+79991234567", mes=TEXT))
        bodies = []
        for path in ("/", "/metrics", "/healthz", "/readyz", "/status.json"):
            status, text, _ = await get(daemon, path)
            assert status == 200, path
            bodies.append(text)
        every = "\n".join(bodies)
        for secret in (PASSWORD, APIKEY, TEXT, "zzqx-marker", "Disk full", "s3cret"):
            assert secret not in every, secret
        assert "+79991234567" not in every  # numbers are masked
        assert "+799******67" in every


def _tool(name: str) -> str:
    import shutil

    from tests.tools import skip_unless_ci

    found = shutil.which(name)
    if found is None:
        skip_unless_ci(f"{name} is not installed (Debian package prometheus)")
    return found


def _py() -> str:
    import platform

    return platform.python_version()


def _version() -> str:
    from mailbridge import __version__

    return __version__


_ = COMMAND_TO


class TestSessionMetrics:
    async def test_connect_refusals_and_open_sessions(self, start_daemon: DaemonFactory) -> None:
        """A session over max_connections is counted as a connect refusal; open ones gauge."""
        daemon = await start_daemon(
            {**HTTP, "smtp": {"max_connections": 1, "max_connections_per_ip": 1}}
        )
        reader, writer = await asyncio.open_connection(daemon.host, daemon.port)
        assert (await reader.readline()).startswith(b"220")
        _, text, _ = await get(daemon, "/metrics")
        assert value(text, "mailbridge_smtp_sessions_open") == 1
        r2, w2 = await asyncio.open_connection(daemon.host, daemon.port)
        assert (await r2.readline()).startswith(b"421")
        w2.close()
        writer.write(b"QUIT\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
        await asyncio.sleep(0.1)
        _, text, _ = await get(daemon, "/metrics")
        assert value(text, "mailbridge_smtp_refused_total", stage="connect", code="421") == 1
        assert value(text, "mailbridge_smtp_sessions_open") == 0
