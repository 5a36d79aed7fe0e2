"""Units of the HTTP side: masking, the metrics registry and worker snapshots, health, config."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbridge.core.config import parse_config
from mailbridge.core.passwords import hash_password
from mailbridge.errors import ConfigError
from mailbridge.http.figures import Figures
from mailbridge.http.health import healthz, readyz, route_checks
from mailbridge.http.metrics import BreakerView, Metrics, QueueFigures
from mailbridge.http.status import build_report, mask, render_html, render_text
from mailbridge.runtime.sdnotify import Heartbeat, watchdog_interval_s
from mailbridge.settings import Settings
from mailbridge.storage.memory import MemoryStorage


def values(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def mails_ok(metrics: Metrics, mode: str = "command") -> float:
    return values(metrics)[("mailbridge_mails_total", (("mode", mode), ("result", "ok")))]


class TestMask:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("+79991234567", "+799******67"),
            ("+4915112345678", "+491********78"),
            ("12345", "1***5"),
            ("1234", "****"),
            ("ops@example.com", "o***@example.com"),
            ("#123456789", "#12*****89"),
        ],
    )
    def test_middle_hidden(self, value: str, shown: str) -> None:
        """The middle of a number is starred; the length stays; addresses keep the domain."""
        assert mask(value) == shown
        assert len(mask(value)) == len(value) or "@" in value


class TestMetrics:
    def test_hooks_count(self) -> None:
        """Each hook moves its series; the exposition carries them under Prometheus names."""
        m = Metrics()
        m.mail("command", None)
        m.mail("forward", 7, request_id="9", account="alex", client_ip="127.0.0.1")
        m.smtp_refused("rcpt", 550, "10.0.0.1")
        m.attempt("main", "sent", 0.2, count=3)
        m.transition("main", "sending", "sent", count=3)
        m.accepted("main", 1.5)
        m.rate_wait("main", 0.25)
        m.reply("sent")
        m.commit(0.003)
        m.session_opened()
        v = values(m)
        assert mails_ok(m) == 1
        assert v[("mailbridge_mails_total", (("mode", "forward"), ("result", "error_7")))] == 1
        assert v[("mailbridge_smtp_refused_total", (("code", "550"), ("stage", "rcpt")))] == 1
        key = (("outcome", "sent"), ("provider", "main"))
        assert v[("mailbridge_provider_attempts_total", key)] == 3
        assert (
            v[("mailbridge_provider_attempt_duration_seconds_count", (("provider", "main"),))] == 1
        )
        assert (
            v[("mailbridge_provider_rate_limit_wait_seconds_total", (("provider", "main"),))]
            == 0.25
        )
        assert v[("mailbridge_reply_mails_total", (("outcome", "sent"),))] == 1
        assert v[("mailbridge_storage_commit_duration_seconds_count", ())] == 1
        assert v[("mailbridge_smtp_sessions_open", ())] == 1
        assert m.activity["main"].sent == 3
        assert m.activity["main"].last_success is not None
        now = m.activity["main"].last_success
        assert m.activity["main"].rate_per_s(now) == 3 / 60
        assert m.activity["main"].rate_per_s(now + 61) == 0
        assert [r.what for r in m.refusals()] == ["RCPT 550", "ERROR = 7"]

    def test_queue_and_breakers_read_at_scrape(self) -> None:
        """Queue gauges come from the source given; every state is present, 0 when none."""
        m = Metrics()
        figures = QueueFigures(
            by_state={"scheduled": 4}, oldest_due=1000.0, replies_waiting=2, read_at=1090.0
        )
        m.read_queue_from(lambda: figures)
        m.read_breakers_from(lambda: [BreakerView(name="a", state="open", rate_per_s=1.0)])
        v = values(m)
        assert v[("mailbridge_queue_sms", (("state", "scheduled"),))] == 4
        assert v[("mailbridge_queue_sms", (("state", "failed"),))] == 0
        assert v[("mailbridge_queue_oldest_due_age_seconds", ())] == 90
        assert v[("mailbridge_reply_mails_waiting", ())] == 2
        assert v[("mailbridge_provider_breaker_state", (("provider", "a"),))] == 2

    def test_worker_snapshots_add_up_and_survive_restarts(self) -> None:
        """The parent adds workers' counters; a restarted or gone worker's counts stay."""
        parent, w0, w1 = Metrics(), Metrics(), Metrics()
        parent.mail("command", None)
        for _ in range(2):
            w0.mail("command", None)
        w0.session_opened()
        w1.mail("command", None)
        w1.mail("number", 8)
        parent.absorb(0, w0.snapshot(pid=100))
        parent.absorb(1, w1.snapshot(pid=101))
        assert mails_ok(parent) == 4
        assert values(parent)[("mailbridge_smtp_sessions_open", ())] == 1
        assert (
            values(parent)[("mailbridge_mails_total", (("mode", "number"), ("result", "error_8")))]
            == 1
        )
        # worker 0 restarted: a new pid starts from zero, the old counts are kept
        fresh = Metrics()
        fresh.mail("command", None)
        parent.absorb(0, fresh.snapshot(pid=200))
        assert mails_ok(parent) == 5
        assert values(parent)[("mailbridge_smtp_sessions_open", ())] == 0
        parent.worker_gone(1)
        assert mails_ok(parent) == 5
        parent.absorb(1, b"not json")  # ignored
        assert mails_ok(parent) == 5
        assert any(r.what == "ERROR = 8" for r in parent.refusals())

    def test_snapshot_fits_a_datagram(self) -> None:
        """A busy worker's snapshot stays far below the 64 KiB the parent reads."""
        m = Metrics()
        for mode in ("command", "forward", "number"):
            for error in (None, 1, 2, 3, 4, 5, 6, 7, 8, 9):
                m.mail(mode, error, request_id="x" * 40, account="a" * 64, client_ip="::1")
        for stage in ("connect", "mail", "rcpt", "data", "auth"):
            m.smtp_refused(stage, 550)
        m.commit(0.001)
        payload = m.snapshot(pid=1)
        assert len(payload) < 16_000
        json.loads(payload)


class TestHealth:
    def test_healthz(self) -> None:
        """200 while the heartbeat keeps time, 503 when it is late."""
        assert healthz(late_s=0.0, uptime_s=5, pid=1)[0] == 200
        assert healthz(late_s=60.0, uptime_s=5, pid=1)[0] == 503

    def test_routes_need_one_usable_provider(self) -> None:
        """A route is ok while one of its providers is not open."""
        settings = parse_config(
            '[[providers]]\nname = "a"\ntype = "file"\npath = "a"\n'
            '[[providers]]\nname = "b"\ntype = "file"\npath = "b"\n'
            '[routing]\ndefault = ["a", "b"]\nrules = [{ prefix = "+7", providers = ["a"] }]\n'
        )
        views = [BreakerView(name="a", state="open", rate_per_s=0)]
        checks = route_checks(settings, views)
        assert checks["default"] == {"ok": True, "usable": ["b"]}
        assert checks["+7"] == {"ok": False, "usable": []}
        status, body = readyz(
            settings, storage_ok=True, storage_error=None, listeners=lambda: True, breakers=views
        )
        assert status == 503
        assert body["checks"]["routes"]["ok"] is False
        status, _ = readyz(
            settings, storage_ok=True, storage_error=None, listeners=lambda: True, breakers=[]
        )
        assert status == 200
        status, body = readyz(
            settings, storage_ok=False, storage_error="locked", listeners=lambda: True, breakers=[]
        )
        assert status == 503
        assert body["checks"]["storage"] == {"ok": False, "error": "locked"}


class TestConfig:
    def test_off_when_absent(self) -> None:
        """No [http]: no listener."""
        assert not parse_config("").http.enabled

    @pytest.mark.parametrize("address", ["0.0.0.0:9025", "[::]:9025", "192.0.2.1:9025", "mx:9025"])
    def test_beyond_loopback_needs_a_credential(self, address: str) -> None:
        """Any address but loopback without token or basic auth stops start-up, naming the key."""
        with pytest.raises(ConfigError) as info:
            parse_config(f'[http]\nlisten = ["{address}"]\n')
        assert "http.token_hash" in str(info.value)
        assert len(str(info.value).splitlines()) == 1

    def test_credentials_allow_any_address(self) -> None:
        """With a token hash, or basic auth, a wide address loads."""
        token = hash_password("t")
        s = parse_config(f'[http]\nlisten = ["0.0.0.0:9025"]\ntoken_hash = "{token}"\n')
        assert s.http.listen == ("0.0.0.0:9025",)
        assert s.http.has_credentials
        s = parse_config(
            f'[http]\nlisten = ["[::]:9025"]\nusername = "p"\npassword_hash = "{token}"\n'
        )
        assert s.http.username == "p"
        assert token not in repr(s.http)

    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ('token_hash = "plain"', "http.token_hash"),
            ('username = "p"', "http.password_hash"),
            ('password_hash = "HASH"', "http.username"),
            ('listen = ["127.0.0.1"]', "http.listen[0]"),
            ("listen = 5", "http.listen"),
        ],
    )
    def test_bad_values(self, text: str, key: str) -> None:
        """Bad [http] values are refused naming the key."""
        text = text.replace("HASH", hash_password("x"))
        with pytest.raises(ConfigError) as info:
            parse_config(f"[http]\n{text}\n")
        assert key in str(info.value)

    def test_loopback_names(self) -> None:
        """127.0.0.0/8, ::1 and localhost count as loopback."""
        s = parse_config('[http]\nlisten = ["127.0.0.2:1", "[::1]:2", "localhost:3"]\n')
        assert len(s.http.listen) == 3


class TestFiguresAndReport:
    async def test_cached_and_masked(self) -> None:
        """Figures read storage once per max age; the report masks numbers and has no text."""
        storage = MemoryStorage()
        await storage.open()
        now = [1_000_000.0]
        figures = Figures(storage, max_age_s=5.0, clock=lambda: now[0])
        first = await figures.queue()
        assert first is not None
        assert figures.reads == 1
        await figures.queue()
        assert figures.reads == 1
        now[0] += 6
        await figures.queue()
        assert figures.reads == 2
        report = build_report(Settings(), now=now[0], queue=first, requests=[])
        assert report["queue"]["sms_by_state"]["scheduled"] == 0
        assert "storage did not answer" not in render_html(report)
        assert "sms: scheduled=0" in render_text(report)
        await storage.close()

    async def test_storage_stats(self) -> None:
        """queue_stats counts rows by state and finds the oldest due scheduled row."""
        storage = MemoryStorage()
        await storage.open()
        now = datetime(2026, 1, 1, tzinfo=UTC)
        stats = await storage.queue_stats(now)
        assert stats.by_state == {}
        assert stats.oldest_due is None
        await storage.close()


class TestHeartbeat:
    def test_watchdog_interval(self) -> None:
        """WATCHDOG_USEC in microseconds; another process's WATCHDOG_PID does not count."""
        assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 30.0
        assert watchdog_interval_s({}) is None
        assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None

    async def test_pings_systemd(self, tmp_path: Path) -> None:
        """With a watchdog, WATCHDOG=1 reaches the notify socket every half interval."""
        path = str(tmp_path / "n.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        beat = Heartbeat({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        assert beat.interval_s == 0.1
        beat.start()
        await asyncio.sleep(0.35)
        await beat.stop()
        got = []
        while True:
            try:
                got.append(sock.recv(100))
            except BlockingIOError:
                break
        sock.close()
        assert got.count(b"WATCHDOG=1") >= 3
        assert beat.late_s() == 0.0
