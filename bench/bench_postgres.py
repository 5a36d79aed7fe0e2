"""Scale-out benchmark: 1, 2 and 3 instances on one PostgreSQL versus one on SQLite.

Everything in one run, on one machine:

1. a throwaway PostgreSQL cluster (``tests/pg.py``: ``initdb`` in a temp dir,
   loopback, fsync on, ``synchronous_commit=on``);
2. ingest: each instance is a separate process (its own event loop and CPU
   share, as separate daemons are) committing ``accept`` calls with
   ``--concurrency`` in flight (as many SMTP sessions), ``--n`` requests in
   all split between the instances; the rate is requests committed per second
   of wall time, from the first start to the last commit;
3. delivery: the rows just ingested, sent by one dispatcher per instance
   process through the Miatel adapter to a fake provider (one
   ``tests.fakes.provider_server`` process per instance, so the provider is not
   the limit), every claim and ``mark_sent`` committed; the rate is SMS marked
   sent per second of wall time;
4. claim latency with ``--rows`` (default 1 000 000) rows in the ``sms`` table
   (bulk-inserted with ``generate_series``; 90 % sent history, 10 % due), for
   ``claim_due(limit=200)`` and ``next_due()``, PostgreSQL and SQLite.

Ratios are printed against one SQLite instance. The machine's CPU count is
printed too: instances, the database server and the fake providers share it.

Run: ``.venv/bin/python bench/bench_postgres.py [--n 6000] [--concurrency 32] [--rows 1000000]``.
Worker mode (used by the parent): ``--worker ingest|deliver --url URL ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from mailbridge.storage.base import Intake, Storage  # noqa: E402
from mailbridge.storage.factory import open_storage  # noqa: E402
from tests.pg import PgCluster, find_bindir  # noqa: E402

FAKE_PROVIDER = [
    sys.executable,
    "-W",
    "ignore::RuntimeWarning",
    "-m",
    "tests.fakes.provider_server",
]
LIMITS = LimitsSettings()  # the defaults: every limit is checked, none is hit
BALANCE: int | None = None  # --balance: one account with a balance (its charges serialise)
RAW = (
    b"From: zabbix@example.com\r\nTo: send@sms.example.com\r\nSubject: alert\r\n"
    b"Message-ID: <bench@example.com>\r\n\r\n" + b"x" * 900 + b"\r\n"
)


def intake(i: int, now: datetime) -> Intake:
    """Request ``i``: one SMS to its own number, account with a balance (so it is charged)."""
    text = f"bench alert {i}: disk usage above 90% on host-{i % 97}"
    request = SmsRequest(
        account="bench",
        client_id=None,
        due=now,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=0,
        messages=(Message(text=text, recipients=(f"+7999{i:07d}",), split=split_text(text)),),
    )
    return Intake(
        received_at=now,
        client_ip="127.0.0.1",
        mail_from="zabbix@example.com",
        rcpt_to=("send@sms.example.com",),
        raw=RAW,
        mode="command",
        account="bench",
        client_id=None,
        request=request,
        error=None,
        balance=BALANCE,
    )


# --- worker processes -------------------------------------------------------------------


async def worker_ingest(url: str, first: int, n: int, concurrency: int) -> dict[str, float]:
    storage = open_storage(url)
    await storage.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    start = time.time()
    todo = iter(range(first, first + n))

    async def session() -> None:
        for i in todo:
            now = datetime.now(UTC)
            await storage.accept(intake(i, now), limits=LIMITS, reply_rate_per_hour=30, now=now)

    await asyncio.gather(*(session() for _ in range(concurrency)))
    end = time.time()
    await storage.close()
    return {"start": start, "end": end, "n": n}


class _Counting:
    """Wraps a storage to count ``mark_sent`` and remember when the last one returned."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.sent = 0
        self.last = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def mark_sent(self, sms_id: int, **kwargs: Any) -> None:
        await self._inner.mark_sent(sms_id, **kwargs)
        self.sent += 1
        self.last = time.time()


async def worker_deliver(url: str, port: int, concurrency: int, owner: str) -> dict[str, float]:
    storage = open_storage(url)
    await storage.open()
    counting = _Counting(storage)
    provider = ProviderSettings(
        name="p",
        type="miatel",
        url=f"http://127.0.0.1:{port}/miatel/sendsms",
        username="u",
        password="p",
        concurrency=concurrency,
    )
    settings = Settings(
        providers=(provider,),
        routing=RoutingSettings(default=("p",)),
        delivery=DeliverySettings(batch_size=200),
    )
    dispatcher = Dispatcher(
        counting,
        build_providers(settings.providers),
        settings,
        owner=owner,
    )
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    start = time.time()
    await dispatcher.start()
    while True:
        await asyncio.sleep(0.05)
        if dispatcher.in_flight == 0 and await storage.next_due() is None:
            break
    await dispatcher.stop(5)
    await storage.close()
    return {"start": start, "end": counting.last or time.time(), "n": counting.sent}


# --- the parent -----------------------------------------------------------------------------


def spawn(args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def run_workers(argvs: Sequence[Sequence[str]]) -> tuple[float, int]:
    """Start workers, release them together; (aggregate rate, total items)."""
    procs = [spawn(a) for a in argvs]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"worker did not start: {line!r}")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        results.append(json.loads(out.strip().splitlines()[-1]))
        if p.returncode != 0:
            raise RuntimeError("worker failed")
    total = int(sum(r["n"] for r in results))
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    return total / elapsed, total


@contextlib.contextmanager
def fake_providers(k: int) -> Iterator[list[int]]:
    procs = [
        subprocess.Popen(
            [*FAKE_PROVIDER, "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(k)
    ]
    try:
        ports = []
        for p in procs:
            assert p.stdout is not None
            ports.append(int(p.stdout.readline()))
        yield ports
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def scaling(
    url: str, instances: int, n: int, concurrency: int, ports: list[int]
) -> tuple[float, float]:
    share = n // instances
    extra = [] if BALANCE is None else ["--balance", str(BALANCE)]
    ingest, _ = run_workers(
        [
            ["--worker", "ingest", "--url", url, "--first", str(k * share), "--n", str(share),
             "--concurrency", str(concurrency), *extra]
            for k in range(instances)
        ]
    )  # fmt: skip
    deliver, sent = run_workers(
        [
            ["--worker", "deliver", "--url", url, "--port", str(ports[k]),
             "--concurrency", str(concurrency), "--owner", f"bench-{k}"]
            for k in range(instances)
        ]
    )  # fmt: skip
    if sent != share * instances:
        print(f"    (marked sent {sent} of {share * instances}: lease re-sends or a shortfall)")
    return ingest, deliver


# --- claim latency on a big table -----------------------------------------------------------

_PG_FILL = """
INSERT INTO requests (pk, request_id, account, client_ip, mail_from, rcpt_to, mode, received_at,
                      result, sms_total)
SELECT g, g::text, 'bench', '127.0.0.1', 'zabbix@example.com', ARRAY['send@sms.example.com'],
       'command', now() - interval '1 day', 'OK - 1 SMS, ID - ' || g, 1
  FROM generate_series(1, %(rows)s) AS g;
INSERT INTO sms (request_pk, recipient, text, sender, format, encoding, parts, state, due,
                 first_due, attempts, provider, provider_id)
SELECT g, '+7999' || lpad(g::text, 7, '0'), 'bench ' || g, 'Alex', 0, 'gsm7', 1,
       CASE WHEN g %% 10 = 0 THEN 'scheduled' ELSE 'sent' END,
       now() - interval '1 hour' + g * interval '1 ms', now() - interval '1 hour', 0,
       CASE WHEN g %% 10 = 0 THEN NULL ELSE 'p' END, CASE WHEN g %% 10 = 0 THEN NULL ELSE 'x' END
  FROM generate_series(1, %(rows)s) AS g;
SELECT setval(pg_get_serial_sequence('requests', 'pk'), %(rows)s);
ANALYZE;
"""

_SQLITE_FILL = """
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :rows)
INSERT INTO requests (pk, request_id, account, client_ip, mail_from, rcpt_to, mode, received_at,
                      result, sms_total)
SELECT x, CAST(x AS TEXT), 'bench', '127.0.0.1', 'zabbix@example.com', '[]', 'command',
       :now - 86400, 'OK', 1 FROM g;
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :rows)
INSERT INTO sms (request_pk, recipient, text, sender, format, encoding, parts, state, due,
                 first_due, attempts, provider, provider_id)
SELECT x, '+7999' || x, 'bench ' || x, 'Alex', 0, 'gsm7', 1,
       CASE WHEN x % 10 = 0 THEN 'scheduled' ELSE 'sent' END, :now - 3600 + x * 0.001,
       :now - 3600, 0, NULL, NULL FROM g;
ANALYZE;
"""


async def claim_latency(storage: Storage, calls: int) -> tuple[float, float, float]:
    """(claim p50, claim p99, next_due p50) in ms over ``calls`` claims of 200 rows."""
    claims, dues = [], []
    for i in range(calls):
        started = time.perf_counter()
        jobs = await storage.claim_due(datetime.now(UTC), limit=200, lease_s=600, owner=f"lat-{i}")
        claims.append((time.perf_counter() - started) * 1000)
        assert jobs
        started = time.perf_counter()
        await storage.next_due()
        dues.append((time.perf_counter() - started) * 1000)
    claims.sort()
    return statistics.median(claims), claims[int(len(claims) * 0.99)], statistics.median(dues)


async def big_table(cluster: PgCluster, folder: Path, rows: int, calls: int) -> None:
    import psycopg

    url = cluster.create_database("big")
    storage = open_storage(url)
    await storage.open()
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for statement in _PG_FILL.split(";"):
            if statement.strip():
                await conn.execute(statement.strip().encode(), {"rows": rows})
    fill_s = time.perf_counter() - started
    pg = await claim_latency(storage, calls)
    await storage.close()

    path = folder / "big.db"
    sq = open_storage(f"sqlite:///{path}")
    await sq.open()
    await sq.close()
    with sqlite3.connect(path) as conn:
        conn.executescript(
            _SQLITE_FILL.replace(":rows", str(rows)).replace(":now", str(time.time()))
        )
    sq = open_storage(f"sqlite:///{path}")
    await sq.open()
    lite = await claim_latency(sq, calls)
    await sq.close()
    print(
        f"  claim latency, {rows} rows in sms ({rows // 10} due, the rest sent history), "
        f"{calls} claims of 200 (PostgreSQL filled in {fill_s:.1f} s):"
    )
    for name, (p50, p99, due) in (("PostgreSQL", pg), ("SQLite", lite)):
        print(
            f"    {name:10s}: claim_due p50 {p50:6.2f} ms, p99 {p99:6.2f} ms; "
            f"next_due p50 {due:5.2f} ms"
        )


async def parent(args: argparse.Namespace) -> None:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (no initdb)")
    print(
        f"postgres bench: n={args.n}, concurrency={args.concurrency} per instance, "
        f"balance {'none (unlimited account)' if BALANCE is None else BALANCE}, "
        f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}"
    )
    cluster = PgCluster(bindir)
    cluster.start()
    try:
        with tempfile.TemporaryDirectory() as tmp, fake_providers(3) as ports:
            folder = Path(tmp)
            rows: list[tuple[str, float, float]] = []
            lite = await asyncio.to_thread(
                scaling, f"sqlite:///{folder / 'one.db'}", 1, args.n, args.concurrency, ports
            )
            rows.append(("SQLite, 1 instance", *lite))
            for k in (1, 2, 3):
                url = cluster.create_database(f"scale{k}_")
                pg = await asyncio.to_thread(scaling, url, k, args.n, args.concurrency, ports)
                rows.append((f"PostgreSQL, {k} instance{'s' if k > 1 else ''}", *pg))
            print("  ingest (accept committed) and delivery (claim -> provider -> mark_sent):")
            for name, ingest, deliver in rows:
                print(
                    f"    {name:24s} ingest {ingest:7.0f} req/s ({ingest / lite[0]:4.2f}x SQLite)"
                    f"   delivery {deliver:7.0f} SMS/s ({deliver / lite[1]:4.2f}x SQLite)"
                )
            if args.rows:
                await big_table(cluster, folder, args.rows, args.claims)
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--worker", choices=["ingest", "deliver"])
    parser.add_argument("--url")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--owner", default="bench")
    parser.add_argument(
        "--balance", type=int, help="give the one account this balance (charges then serialise)"
    )
    args = parser.parse_args()
    global BALANCE  # the workers read it when building intakes
    BALANCE = args.balance
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    if args.worker == "ingest":
        result = asyncio.run(worker_ingest(args.url, args.first, args.n, args.concurrency))
        print(json.dumps(result), flush=True)
    elif args.worker == "deliver":
        result = asyncio.run(worker_deliver(args.url, args.port, args.concurrency, args.owner))
        print(json.dumps(result), flush=True)
    else:
        asyncio.run(parent(args))


if __name__ == "__main__":
    main()
