"""Delivery benchmark: SMS per second from SQLite to a loopback fake provider.

Measures, in one run, against the same fake provider server (a subprocess, so
it does not share this process's CPU):

1. a bare aiohttp client loop, ``--concurrency`` requests in flight (the
   fastest Python client: the reference);
2. a bare httpx loop the same way, httpx's own pool (for orientation, on at
   most 1 000 requests: it is slow);
3. the dispatcher: ``--n`` single-recipient requests committed to a fresh
   SQLite database, then sent through the ``--kind`` adapter with
   ``concurrency`` = ``--concurrency`` and no rate limit, every state change
   committed (claim → ``sending``, ``mark_sent``); the clock stops when the
   last ``mark_sent`` has returned. Rounds 1 and 3 are repeated ``--repeat``
   times, each dispatcher run paired with the reference run just before it
   (the ratio of each pair, and their median, are printed: loopback rates
   on a shared machine vary by 2× from run to run). CPU time per SMS of this
   process (the SQLite writer thread included) is printed beside each rate;
4. the same with the ``jsonapi`` adapter batching 50 recipients of one text
   per request (``max_recipients = 50``), the best case of the wire format;
5. memory of the dispatcher with 100 / 100 000 rows scheduled for tomorrow;
6. end-to-end latency with the queue idle: the 250 of an SMTP DATA to the
   provider's receipt of the request (the full gateway, ``mailbridge.runtime.app``).

Run: ``.venv/bin/python bench/bench_delivery.py [--n 5000] [--concurrency 50] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailbridge.core.encoding import split_text  # noqa: E402
from mailbridge.delivery.dispatcher import Dispatcher  # noqa: E402
from mailbridge.models import Format, Message, SmsRequest  # noqa: E402
from mailbridge.providers.factory import build_providers  # noqa: E402
from mailbridge.settings import (  # noqa: E402
    DeliverySettings,
    LimitsSettings,
    ProviderSettings,
    RoutingSettings,
    Settings,
)
from mailbridge.storage.base import Intake  # noqa: E402
from mailbridge.storage.sqlite import SqliteStorage  # noqa: E402

PATHS = {"miatel": "/miatel/sendsms", "jsonapi": "/jsonapi/message", "smsc": "/smsc/send.php"}
LIMITS = LimitsSettings(duplicate_max=10**9, flood_max=10**9)


@contextlib.contextmanager
def fake_server(log: Path | None = None) -> Iterator[int]:
    """The fake provider in a child process; yields its port."""
    cmd = [sys.executable, "-m", "tests.fakes.provider_server", "--port", "0"]
    if log is not None:
        cmd += ["--log", str(log)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)


def _miatel_params(i: int) -> dict[str, str]:
    return {
        "username": "u",
        "password": "p",
        "from": "Alex",
        "to": f"7999{i:07d}",
        "text": f"bench {i}",
        "comment": str(i),
    }


async def bare_aiohttp(port: int, n: int, concurrency: int) -> tuple[float, float]:
    """Requests per second and CPU µs per request of a plain aiohttp loop."""
    url = f"http://127.0.0.1:{port}{PATHS['miatel']}"
    counter = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in counter:
                async with session.get(url, params=_miatel_params(i)) as resp:
                    await resp.read()
                    assert resp.status == 202

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return _rate(n, started, cpu)


async def bare_httpx(port: int, n: int, concurrency: int) -> tuple[float, float]:
    """Requests per second and CPU µs per request of a plain httpx loop (its own pool)."""
    url = f"http://127.0.0.1:{port}{PATHS['miatel']}"
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def worker() -> None:
            for i in counter:
                resp = await client.get(url, params=_miatel_params(i))
                assert resp.status_code == 202

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return _rate(n, started, cpu)


class CountingStorage(SqliteStorage):
    """SQLite storage that signals when ``target`` rows have been committed as sent."""

    target = 0
    sent = 0
    done: asyncio.Event

    async def mark_sent(self, sms_id: int, **kwargs: Any) -> None:
        await super().mark_sent(sms_id, **kwargs)
        self.sent += 1
        if self.sent >= self.target:
            self.done.set()


def _rate(n: int, started: float, cpu: float) -> tuple[float, float]:
    """Items per second since ``started`` and CPU µs per item since ``cpu``."""
    wall = time.perf_counter() - started
    return n / wall, (time.process_time() - cpu) / n * 1e6


def intake(recipients: list[str], text: str, due: datetime, now: datetime) -> Intake:
    request = SmsRequest(
        account="bench",
        client_id=None,
        due=due,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=0,
        messages=(Message(text=text, recipients=tuple(recipients), split=split_text(text)),),
    )
    return Intake(
        received_at=now,
        client_ip="127.0.0.1",
        mail_from="bench@example.com",
        rcpt_to=("send@localhost",),
        raw=b"",
        mode="command",
        account="bench",
        client_id=None,
        request=request,
        error=None,
    )


async def fill(storage: SqliteStorage, n: int, *, same_text: bool, due: datetime) -> None:
    now = datetime.now(UTC)
    pending: set[asyncio.Task[Any]] = set()
    for i in range(n):
        text = "bench" if same_text else f"bench {i}"
        job = storage.accept(
            intake([f"+7999{i:07d}"], text, due, now),
            limits=LIMITS,
            reply_rate_per_hour=0,
            now=now,
        )
        pending.add(asyncio.ensure_future(job))
        if len(pending) >= 200:
            _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)


def settings_for(kind: str, port: int, concurrency: int, batch: int) -> Settings:
    provider = ProviderSettings(
        name="p",
        type=kind,
        url=f"http://127.0.0.1:{port}{PATHS[kind]}",
        username="u",
        password="p",
        concurrency=concurrency,
        max_recipients=batch,
    )
    return Settings(
        providers=(provider,),
        routing=RoutingSettings(default=("p",)),
        delivery=DeliverySettings(batch_size=max(200, concurrency * batch * 2)),
    )


async def dispatch_rate(
    port: int, n: int, concurrency: int, *, kind: str, batch: int, folder: Path
) -> tuple[float, float]:
    """SMS per second and CPU µs per SMS from committed rows to ``mark_sent``."""
    db = folder / f"bench-{kind}-{batch}-{time.monotonic_ns()}.db"
    storage = CountingStorage(db)
    await storage.open()
    try:
        await fill(storage, n, same_text=batch > 1, due=datetime.now(UTC))
        storage.target = n
        storage.done = asyncio.Event()
        settings = settings_for(kind, port, concurrency, batch)
        providers = build_providers(settings.providers)
        dispatcher = Dispatcher(storage, providers, settings, owner="b")
        started, cpu = time.perf_counter(), time.process_time()
        await dispatcher.start()
        await asyncio.wait_for(storage.done.wait(), 600)
        result = _rate(n, started, cpu)
        await dispatcher.stop(5)
        return result
    finally:
        await storage.close()


async def memory_with_scheduled(rows: int, folder: Path, port: int) -> float:
    """KiB allocated by the dispatcher (tracemalloc peak) with ``rows`` due tomorrow."""
    storage = SqliteStorage(folder / f"mem-{rows}.db")
    await storage.open()
    try:
        await fill(storage, rows, same_text=False, due=datetime.now(UTC) + timedelta(days=1))
        settings = settings_for("miatel", port, 50, 1)
        tracemalloc.start()
        dispatcher = Dispatcher(storage, build_providers(settings.providers), settings, owner="m")
        await dispatcher.start()
        for _ in range(5):
            dispatcher.wake()
            await asyncio.sleep(0.05)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await dispatcher.stop(1)
        return peak / 1024
    finally:
        await storage.close()


async def latency(folder: Path, samples: int) -> tuple[float, float, float]:
    """p50/p99/max ms from the 250 of DATA to the provider receiving the request."""
    from mailbridge.core.config import parse_config
    from mailbridge.runtime.app import Gateway

    log = folder / "provider-requests.jsonl"
    with fake_server(log) as port:
        config = f"""
[smtp]
listen = ["127.0.0.1:0"]
domains = ["localhost"]
[storage]
url = "sqlite:///{folder / "latency.db"}"
[limits]
duplicate_max = 1000000
flood_max = 1000000
[[accounts]]
login = "alex"
password = "pw"
senders = ["Alex"]
default_sender = "Alex"
[[providers]]
name = "p"
type = "miatel"
url = "http://127.0.0.1:{port}{PATHS["miatel"]}"
username = "u"
password = "p"
concurrency = 8
[routing]
default = ["p"]
[logging]
level = "error"
"""
        gateway = Gateway(parse_config(config, source="<bench>"))
        await gateway.start()
        host, smtp_port = gateway.addresses[0]
        import aiosmtplib

        acked: list[float] = []
        try:
            for i in range(samples):
                body = f"alex:pw::::+7999{i:07d}:latency {i}\r\n"
                mail = (
                    "From: bench@example.com\r\nTo: send@localhost\r\nSubject: b\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
                ).encode()
                client = aiosmtplib.SMTP(hostname=host, port=smtp_port, start_tls=False)
                await client.connect()
                try:
                    await client.sendmail("bench@example.com", ["send@localhost"], mail)
                    acked.append(time.time())
                finally:
                    with contextlib.suppress(Exception):
                        await client.quit()
                await asyncio.sleep(0.02)  # the queue idle between mails
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                lines = log.read_text().splitlines() if log.exists() else []
                if len(lines) >= samples:
                    break
                await asyncio.sleep(0.05)
        finally:
            await gateway.stop(drain_s=1)
    arrived: dict[int, float] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        comment = record.get("query", {}).get("text", [""])[0]
        if comment.startswith("latency "):
            arrived[int(comment.split()[1])] = record["at"]
    delays = sorted((arrived[i] - acked[i]) * 1000 for i in range(samples) if i in arrived)
    if len(delays) < samples:
        print(f"  (only {len(delays)} of {samples} requests reached the provider)")
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    return p50, p99, delays[-1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--kind", default="miatel", choices=sorted(PATHS))
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="reference/dispatcher pairs")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    n, conc = args.n, args.concurrency
    print(f"delivery bench: n={n}, concurrency={conc}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp, fake_server() as port:
        folder = Path(tmp)
        await bare_aiohttp(port, min(n, 500), conc)  # warm-up
        hx, hx_cpu = await bare_httpx(port, min(n, 1000), conc)
        print(f"  bare httpx loop (own pool):   {hx:8.0f} req/s   {hx_cpu:5.0f} µs CPU/req")
        ratios: list[float] = []
        for _ in range(max(1, args.repeat)):
            ref, ref_cpu = await bare_aiohttp(port, n, conc)
            print(f"  bare aiohttp loop:            {ref:8.0f} req/s   {ref_cpu:5.0f} µs CPU/req")
            rate, cpu = await dispatch_rate(port, n, conc, kind=args.kind, batch=1, folder=folder)
            ratios.append(rate / ref)
            print(
                f"  dispatcher {args.kind}, 1/request: {rate:8.0f} SMS/s   {cpu:5.0f} µs CPU/SMS"
                f"   ratio {rate / ref:.2f} of aiohttp"
            )
        print(
            f"  ratio median {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target >= 0.3)"
        )
        batched, batched_cpu = await dispatch_rate(
            port, n, conc, kind="jsonapi", batch=50, folder=folder
        )
        print(
            f"  dispatcher jsonapi, 50/request: {batched:6.0f} SMS/s   "
            f"{batched_cpu:5.0f} µs CPU/SMS   ratio {batched / ref:.2f} of the last aiohttp run"
        )
        if not args.skip_memory:
            small = await memory_with_scheduled(100, folder, port)
            large = await memory_with_scheduled(100_000, folder, port)
            print(
                f"  dispatcher memory (tracemalloc peak), rows due tomorrow: "
                f"100 -> {small:.0f} KiB, 100000 -> {large:.0f} KiB"
            )
    if args.latency_samples:
        with tempfile.TemporaryDirectory() as tmp:
            p50, p99, worst = await latency(Path(tmp), args.latency_samples)
        print(
            f"  latency 250 -> provider request, queue idle: p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, max {worst:.1f} ms (target p50 < 10, p99 < 50)"
        )


if __name__ == "__main__":
    asyncio.run(main())
