"""Ingest benchmark: mails per second over loopback, mailbridge against a bare aiosmtpd.

Both servers run as child processes in the same run, in two shapes: one mail
per connection, and many per connection (20 parallel sessions by default).
Two load generators:

* Postfix's ``smtp-source`` (C, so the client does not steal CPU from the
  servers), without and with ``-d``, sending one real command-mode mail
  (``-F``): the same text to the same number every time;
* a small Python client on asyncio streams sending real command-mode mails,
  each to another number (so the phone parser and its cache work for real);
  it also measures the time from the end of DATA to the 250 (p50/p99), first
  at full load, then paced at half the rate mailbridge reached.

Two modes, reported separately:

* ``live``: the SMS are due at once, so mailbridge's dispatcher delivers them
  to the ``file`` provider in the same process while it ingests (the honest
  figure: delivery competes for the CPU);
* ``ingest-only``: the commands carry ``time = +1440`` (due in a day), so only
  the SMTP/parse/storage path runs.

The bare server's ``handle_DATA`` only returns 250; mailbridge parses,
authenticates, commits each mail to SQLite (WAL, synchronous=FULL, group
commit) before its 250 and logs one JSON line per mail (to /dev/null).
Between measurements the bench waits until mailbridge is idle (the
dispatcher has caught up). ``--memory N`` also sends N mails (live) and
prints mailbridge's resident memory along the way.

With ``--workers N`` mailbridge runs ``[smtp] workers = N`` (N SMTP processes
sharing the port with ``SO_REUSEPORT``, delivery in the parent); its CPU per
mail is then summed over the parent and its workers.

    .venv/bin/python bench/bench_ingest.py [--mails 3000] [--sessions 20] [--memory 100000]
        [--workers 2] [--modes ingest-only,live] [--shapes one,many]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-pw"

BARE_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main(port):
    loop = asyncio.get_running_loop()
    handler = Handler()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bare.test", data_size_limit=102400), "127.0.0.1", port,
        backlog=512)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config_toml(folder: Path, port: int, workers: int = 1) -> str:
    from mailbridge.core.passwords import hash_password

    return f"""
[smtp]
listen = ["127.0.0.1:{port}"]
workers = {workers}
hostname = "mx.bench"
domains = ["sms.example.com"]
max_connections = 1000
max_connections_per_ip = 1000
# smtp-source -d sends mails/sessions mails on each connection
command_call_limit = 1000000

[storage]
url = "sqlite:///{folder / "bench.db"}"

[limits]
# smtp-source sends one identical mail: a short window keeps each duplicate count small
duplicate_window_s = 0.01
duplicate_max = 1000000
flood_max = 1000000
error_block_after = 1000000

[[accounts]]
login = "bench"
password_hash = "{hash_password(PASSWORD)}"
default_sender = "Bench"

[[providers]]
name = "out"
type = "file"
path = "{folder / "outbox.jsonl"}"

[logging]
level = "info"
format = "json"
"""


#: The ``<time>`` field of the commands: now (live delivery) or in a day (ingest only).
TIMES = {"live": "", "ingest-only": "+1440"}


def mail(i: int, time_field: str = "") -> bytes:
    """Command-mode mail ``i``: to its own number, so no duplicate or flood refusal."""
    number = f"+7999{1000000 + i % 8999999:07d}"
    body = f"bench:{PASSWORD}::{time_field}::{number}:Disk usage on host-{i} is above 90%"
    return (
        "From: bench@example.com\r\nTo: send@sms.example.com\r\n"
        f"Subject: bench {i}\r\nMessage-ID: <b{i}@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


@dataclass
class Result:
    mails: int
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def rate(self) -> float:
        return self.mails / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Session:
    """A minimal SMTP client on asyncio streams (the load generator must stay cheap)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int) -> Session:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        s = cls(reader, writer)
        await s.reply()
        await s.cmd(b"EHLO bench.test\r\n")
        return s

    async def reply(self) -> bytes:
        while True:
            line = await self.r.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return line

    async def cmd(self, data: bytes) -> bytes:
        self.w.write(data)
        return await self.reply()

    async def send(self, raw: bytes) -> tuple[bool, float]:
        await self.cmd(b"MAIL FROM:<bench@example.com>\r\n")
        await self.cmd(b"RCPT TO:<send@sms.example.com>\r\n")
        await self.cmd(b"DATA\r\n")
        started = time.perf_counter()
        answer = await self.cmd(raw + b".\r\n")
        return answer.startswith(b"250"), time.perf_counter() - started

    async def close(self) -> None:
        with_quit = self.cmd(b"QUIT\r\n")
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(with_quit, 2)
        self.w.close()


async def load(
    port: int,
    *,
    mails: int,
    sessions: int,
    per_connection: int,
    start: int,
    rate: float = 0,
    time_field: str = "",
) -> Result:
    """Send ``mails`` mails over ``sessions`` parallel sessions; ``rate`` > 0 paces them."""
    counter = iter(range(start, start + mails))
    latencies: list[float] = []
    failures = 0
    t0 = time.perf_counter()

    async def worker() -> None:
        nonlocal failures
        session: Session | None = None
        sent_here = 0
        for i in counter:
            if rate:
                due = t0 + (i - start) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if session is None:
                session = await Session.open(port)
            ok, latency = await session.send(mail(i, time_field))
            latencies.append(latency)
            failures += not ok
            sent_here += 1
            if sent_here >= per_connection:
                await session.close()
                session, sent_here = None, 0
        if session is not None:
            await session.close()

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return Result(mails, time.perf_counter() - t0, latencies, failures)


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(100)
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (mailbridge's SMTP workers with ``--workers`` > 1)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children (all their threads)."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, *, limit_s: float = 120.0) -> None:
    """Wait until ``pid`` uses under 5 % of a CPU over 0.5 s (the dispatcher caught up)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = cpu_s(pid)
        time.sleep(0.5)
        if cpu_s(pid) - before < 0.025:
            return


def smtp_source(
    port: int, *, mails: int, sessions: int, per_connection: bool, message: Path
) -> tuple[float, bool] | None:
    """Rate of Postfix's smtp-source sending ``message`` (None when it is not installed).

    The bool says whether every mail got a 2xx (smtp-source stops at the first refusal).
    """
    exe = shutil.which("smtp-source") or next(
        (p for p in ("/usr/sbin/smtp-source",) if os.access(p, os.X_OK)), None
    )
    if exe is None:
        return None
    args = [exe, "-s", str(sessions), "-m", str(mails), "-f", "bench@example.com",
            "-t", "send@sms.example.com", "-M", "bench.test", "-F", str(message)]  # fmt: skip
    if not per_connection:
        args.append("-d")
    args.append(f"127.0.0.1:{port}")
    t0 = time.perf_counter()
    done = subprocess.run(args, check=False, capture_output=True)
    return mails / (time.perf_counter() - t0), done.returncode == 0


def source_message(folder: Path, time_field: str) -> Path:
    """The file smtp-source sends (``-F``): mail 0, without the line ends it adds itself."""
    path = folder / f"mail{time_field or '-now'}.txt"
    path.write_text(mail(0, time_field).decode().replace("\r\n", "\n"))
    return path


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]


def measure(
    label: str,
    mode: str,
    servers: Sequence[Server],
    args: argparse.Namespace,
    folder: Path,
    start: int,
) -> int:
    """One shape in one mode: smtp-source and the Python client, bare and mailbridge."""
    per_conn = 1 if label == "1/conn" else args.per_connection
    time_field = TIMES[mode]
    mb = servers[1]
    tag = f"{label:>7} {mode:<11}"
    message = source_message(folder, time_field)
    rates: dict[str, float] = {}
    for server in servers:
        wait_idle(mb.proc.pid)
        got = smtp_source(
            server.port, mails=args.mails, sessions=args.sessions,
            per_connection=per_conn == 1, message=message,
        )  # fmt: skip
        if got is None:
            break
        rates[server.name], ok = got
        if not ok:
            print(f"{tag}: smtp-source -> {server.name}: a mail was refused")
    if rates:
        print(
            f"{tag}: smtp-source  bare {rates['bare']:6.0f}/s  mailbridge "
            f"{rates['mailbridge']:6.0f}/s  ratio {rates['mailbridge'] / rates['bare']:.2f}"
        )
    results: dict[str, Result] = {}
    cpu: dict[str, float] = {}
    for server in servers:
        wait_idle(mb.proc.pid)
        asyncio.run(load(server.port, mails=200, sessions=args.sessions,
                         per_connection=per_conn, start=start, time_field=time_field))  # fmt: skip
        start += 200
        wait_idle(mb.proc.pid)
        before = cpu_s(server.proc.pid)
        results[server.name] = asyncio.run(load(
            server.port, mails=args.mails, sessions=args.sessions, per_connection=per_conn,
            start=start, time_field=time_field,
        ))  # fmt: skip
        if server is mb:
            wait_idle(mb.proc.pid)  # count the delivery of these mails too
        cpu[server.name] = (cpu_s(server.proc.pid) - before) / args.mails * 1000
        start += args.mails
    b, m = results["bare"], results["mailbridge"]
    print(
        f"{tag}: python client bare {b.rate:6.0f}/s  mailbridge {m.rate:6.0f}/s  "
        f"ratio {m.rate / b.rate:.2f}  | p50/p99 to 250: bare {b.pct(0.5):.1f}/"
        f"{b.pct(0.99):.1f} ms, mailbridge {m.pct(0.5):.1f}/{m.pct(0.99):.1f} ms"
        f" | server CPU/mail: bare {cpu['bare']:.2f} ms, mailbridge {cpu['mailbridge']:.2f} ms"
        f"  failures {m.failures}"
    )
    wait_idle(mb.proc.pid)
    paced = asyncio.run(load(
        mb.port, mails=args.mails // 2, sessions=args.sessions, per_connection=per_conn,
        start=start, rate=m.rate / 2, time_field=time_field,
    ))  # fmt: skip
    start += args.mails // 2
    print(
        f"{tag}: mailbridge paced at {m.rate / 2:.0f}/s -> {paced.rate:.0f}/s, "
        f"p50 {paced.pct(0.5):.1f} ms, p99 {paced.pct(0.99):.1f} ms to 250"
        f"  failures {paced.failures}"
    )
    return start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=3000, help="mails per measurement")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--per-connection", type=int, default=50, help="mails per connection")
    parser.add_argument("--memory", type=int, default=0, help="also send this many, watch RSS")
    parser.add_argument(
        "--modes", default="ingest-only,live", help="comma-separated: ingest-only, live"
    )
    parser.add_argument(
        "--shapes", default="one,many", help="comma-separated: one (mail per connection), many"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="mailbridge's [smtp] workers (SMTP processes)"
    )
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="mailbridge-bench-"))
    mb_port, bare_port = free_port(), free_port()
    (folder / "config.toml").write_text(config_toml(folder, mb_port, args.workers))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    mb = subprocess.Popen(
        [sys.executable, "-m", "mailbridge.cli", "serve", "--config", str(folder / "config.toml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_SERVER, str(bare_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    servers = (Server("bare", bare_port, bare), Server("mailbridge", mb_port, mb))
    try:
        wait_port(mb_port, mb)
        wait_port(bare_port, bare)
        print(
            f"{args.sessions} sessions, {args.mails} mails per measurement, "
            f"cpus={os.cpu_count()}, mailbridge workers={args.workers}; "
            "live = SMS delivered to the file provider meanwhile, "
            "ingest-only = SMS due in a day"
        )
        start = 0
        for mode in args.modes.split(","):
            shapes = {"one": "1/conn", "many": f"{args.per_connection}/conn"}
            for shape in args.shapes.split(","):
                start = measure(shapes[shape], mode, servers, args, folder, start)
        if args.memory:
            step = max(args.memory // 10, 1)
            wait_idle(mb.pid)
            print(f"memory over {args.memory} mails, live (RSS of mailbridge, KiB):")
            print(f"  at the start:    {rss_kib(mb.pid)}")
            for _ in range(10):
                asyncio.run(load(mb_port, mails=step, sessions=args.sessions,
                                 per_connection=args.per_connection, start=start))  # fmt: skip
                start += step
                print(f"  after {start:>8} mails: {rss_kib(mb.pid)}")
    finally:
        for proc in (mb, bare):
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
