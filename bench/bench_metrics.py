"""What metrics cost the SMTP path: ingest CPU per mail without and with ``[http]``.

Two mailbridge daemons run side by side on the config of ``bench_ingest.py``
(ingest-only: the SMS are due in a day, so only the SMTP/parse/storage path
runs): ``off`` without ``[http]`` (the hooks call the no-op observer) and
``on`` with ``[http] listen`` on loopback (every hook counts, and a scraper
reads ``/metrics`` every ``--scrape`` seconds during the load). Rounds are
interleaved — off/on, then on/off, … — so drift of the machine hits both
alike; each round sends ``--mails`` mails over ``--sessions`` sessions with
the Python client of ``bench_ingest.py`` and reads the daemon's CPU
(user + system, all threads, workers included) before and after.

``--fresh`` starts both daemons anew each round (a persistent difference
between two processes — placement, memory layout, a growing database —
then averages out); ``--same`` is the A/A check (both without ``[http]``):
what the method reads when there is nothing to find.

Printed: CPU per mail for each round, the medians, the ratio of the medians,
and the median of the per-round ratios (each round's pair ran back to back,
so that one follows the machine's drift best). ``--scrape 0``: no scrapes,
the hooks alone.
The machine's noise (other processes, CPU frequency) easily exceeds the
effect, so the bench also times the hooks themselves in this process: the
calls one mail makes on the SMTP side (a session opened and closed, the
mail's result, one storage commit) on the no-op observer and on
``Metrics``, in microseconds per mail.

    .venv/bin/python bench/bench_metrics.py [--mails 2000] [--rounds 6] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import (
    ROOT,
    Result,
    config_toml,
    cpu_s,
    free_port,
    load,
    wait_idle,
    wait_port,
)


def scraper(port: int, every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                resp.read()
        except OSError:
            pass


def hooks_per_mail_us(n: int = 200_000) -> tuple[float, float]:
    """Time of one mail's SMTP-side hooks on the no-op observer and on Metrics (µs)."""
    from mailbridge.http.metrics import Metrics
    from mailbridge.observe import NULL_OBSERVER, Observer

    def run(observer: Observer) -> float:
        started = time.process_time()
        for i in range(n):
            observer.session_opened()
            observer.mail("command", None, request_id=str(i), account="bench", client_ip="::1")
            observer.commit(0.0004)
            observer.session_closed()
        return (time.process_time() - started) / n * 1e6

    run(Metrics())  # warm-up
    return min(run(NULL_OBSERVER) for _ in range(3)), min(run(Metrics()) for _ in range(3))


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    port: int
    http_port: int | None
    folder: Path


def start_daemon(name: str, args: argparse.Namespace, env: dict[str, str], *, http: bool) -> Daemon:
    folder = Path(tempfile.mkdtemp(prefix=f"mailbridge-bench-metrics-{name}-"))
    port = free_port()
    text = config_toml(folder, port, args.workers)
    http_port = None
    if http:
        http_port = free_port()
        text += f'\n[http]\nlisten = ["127.0.0.1:{http_port}"]\n'
    (folder / "config.toml").write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbridge.cli", "serve", "--config", str(folder / "config.toml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    return Daemon(proc, port, http_port, folder)


def stop_daemons(daemons: dict[str, Daemon]) -> None:
    for d in daemons.values():
        d.proc.terminate()
        d.proc.wait(30)
        shutil.rmtree(d.folder, ignore_errors=True)
    daemons.clear()


def measure(d: Daemon, args: argparse.Namespace, start: int) -> tuple[float, Result]:
    """CPU ms per mail of daemon ``d`` over one load of ``args.mails`` mails."""
    wait_idle(d.proc.pid)
    stop = threading.Event()
    thread = None
    if d.http_port is not None and args.scrape > 0:
        thread = threading.Thread(target=scraper, args=(d.http_port, args.scrape, stop))
        thread.start()
    before = cpu_s(d.proc.pid)
    result = asyncio.run(load(
        d.port, mails=args.mails, sessions=args.sessions,
        per_connection=args.per_connection, start=start, time_field="+1440",
    ))  # fmt: skip
    wait_idle(d.proc.pid)
    used = cpu_s(d.proc.pid) - before
    stop.set()
    if thread is not None:
        thread.join()
    return used / args.mails * 1000, result


def forwarding_us(n: int = 2000) -> tuple[float, float, int]:
    """One worker snapshot (made in the worker) and its absorption (in the parent), in µs,
    and its size in bytes, for a worker that has seen every mode and result."""
    from mailbridge.http.metrics import Metrics

    worker, parent = Metrics(), Metrics()
    for mode in ("command", "forward", "number"):
        for error in (None, 1, 2, 3, 4, 5, 6, 7, 8, 9):
            worker.mail(mode, error, request_id="123456", account="zabbix", client_ip="10.0.0.1")
    for stage in ("connect", "mail", "rcpt", "auth"):
        worker.smtp_refused(stage, 550, "10.0.0.1")
    worker.commit(0.001)
    started = time.process_time()
    for _ in range(n):
        payload = worker.snapshot(pid=1)
    made = (time.process_time() - started) / n * 1e6
    started = time.process_time()
    for _ in range(n):
        parent.absorb(0, payload)
    taken = (time.process_time() - started) / n * 1e6
    return made, taken, len(payload)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000, help="mails per round and daemon")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--per-connection", type=int, default=50)
    parser.add_argument("--scrape", type=float, default=2.0, help="seconds between scrapes")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--hooks-only", action="store_true", help="only time the hooks")
    parser.add_argument(
        "--fresh", action="store_true", help="start both daemons afresh for every round"
    )
    parser.add_argument("--same", action="store_true", help="A/A: both daemons without [http]")
    args = parser.parse_args(argv)

    null_us, metrics_us = hooks_per_mail_us()
    print(
        f"hooks of one mail (session, result, commit): no-op observer {null_us:.2f} µs, "
        f"Metrics {metrics_us:.2f} µs"
    )
    made, taken, size = forwarding_us()
    print(
        f"worker forwarding, once a second per worker: snapshot {made:.0f} µs in the worker, "
        f"absorbed in {taken:.0f} µs by the parent, {size} bytes"
    )
    if args.hooks_only:
        return 0

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    names = ("off", "on")
    per_mail: dict[str, list[float]] = {name: [] for name in names}
    daemons: dict[str, Daemon] = {}
    print(
        f"ingest-only, {args.mails} mails per round, {args.sessions} sessions, "
        f"{args.per_connection} mails/connection, workers={args.workers}, "
        f"scrape every {args.scrape:g} s (on), "
        f"{'fresh daemons each round' if args.fresh else 'the same two daemons'}"
        f"{', A/A: both without [http]' if args.same else ''}, cpus={os.cpu_count()}"
    )
    start = 0
    try:
        for r in range(args.rounds):
            if args.fresh or not daemons:
                stop_daemons(daemons)
                for name in names:
                    daemons[name] = start_daemon(
                        name, args, env, http=name == "on" and not args.same
                    )
                for d in daemons.values():
                    wait_port(d.port, d.proc)
                    asyncio.run(
                        load(
                            d.port,
                            mails=300,
                            sessions=args.sessions,
                            per_connection=args.per_connection,
                            start=start,
                            time_field="+1440",
                        )
                    )  # fmt: skip  (warm-up)
                    start += 300
            order = names if r % 2 == 0 else names[::-1]
            line = []
            for name in order:
                ms, result = measure(daemons[name], args, start)
                start += args.mails
                per_mail[name].append(ms)
                line.append(
                    f"{name} {ms:.3f} ms/mail ({result.rate:.0f}/s, {result.failures} failed)"
                )
            print(f"round {r + 1}: " + "  ".join(line))
        off, on = statistics.median(per_mail["off"]), statistics.median(per_mail["on"])
        paired = sorted(b / a for a, b in zip(per_mail["off"], per_mail["on"], strict=True))
        pr = statistics.median(paired)
        print(
            f"median CPU per mail: off {off:.3f} ms, on {on:.3f} ms, "
            f"ratio of medians {on / off:.3f} ({(on / off - 1) * 100:+.1f} %); "
            f"median per-round ratio {pr:.3f} ({(pr - 1) * 100:+.1f} %), "
            f"middle half {paired[len(paired) // 4]:.3f}–{paired[(3 * len(paired)) // 4]:.3f}"
        )
    finally:
        stop_daemons(daemons)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
