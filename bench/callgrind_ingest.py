"""Instructions per mail of the whole mailbridge daemon, counted by callgrind (repeatable).

Starts ``python -m mailbridge.cli serve`` of the tree given (its own
``bench/bench_ingest.py`` config and mails, ingest-only: due in a day) under
``valgrind --tool=callgrind``, sends ``--warm`` mails, zeroes the counters
(``callgrind_control -z``), sends ``--mails`` mails one after another from
this process (not under valgrind), dumps the counters and prints the
instructions per mail of the daemon (all its threads: event loop and SQLite
writer). Sequential mails keep every group commit at one intake, so the count
does not depend on timing; only the once-a-second pruning and timers do, a
fraction of a per cent.

    python bench/callgrind_ingest.py --tree /path/to/checkout [--shape many|one] [--mails 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _bench_module(tree: Path) -> Any:
    spec = importlib.util.spec_from_file_location("tree_bench", tree / "bench" / "bench_ingest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tree_bench"] = module
    sys.path.insert(0, str(tree))
    spec.loader.exec_module(module)
    return module


class Client:
    def __init__(self, port: int) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.f = self.s.makefile("rb")
        self.reply()
        self.cmd(b"EHLO bench.test\r\n")

    def reply(self) -> bytes:
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return line

    def cmd(self, data: bytes) -> bytes:
        self.s.sendall(data)
        return self.reply()

    def send(self, raw: bytes) -> None:
        self.cmd(b"MAIL FROM:<bench@example.com>\r\n")
        self.cmd(b"RCPT TO:<send@sms.example.com>\r\n")
        self.cmd(b"DATA\r\n")
        answer = self.cmd(raw + b".\r\n")
        if not answer.startswith(b"250"):
            raise SystemExit(f"refused: {answer!r}")

    def close(self) -> None:
        self.cmd(b"QUIT\r\n")
        self.s.close()


def send(port: int, mails: list[bytes], shape: str) -> None:
    if shape == "many":
        for start in range(0, len(mails), 50):
            c = Client(port)
            for raw in mails[start : start + 50]:
                c.send(raw)
            c.close()
    else:
        for raw in mails:
            c = Client(port)
            c.send(raw)
            c.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tree", type=Path, required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--shape", choices=("many", "one"), default="many")
    p.add_argument("--mails", type=int, default=300)
    p.add_argument("--warm", type=int, default=100)
    p.add_argument("--out", type=Path, default=None, help="keep the callgrind dump here")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="no valgrind: cProfile the daemon's main thread into this file",
    )
    a = p.parse_args()
    tree = a.tree.resolve()
    bench = _bench_module(tree)
    port = bench.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg = folder / "config.toml"
        cfg.write_text(bench.config_toml(folder, port))
        out = folder / "callgrind.out"
        cmd = [a.python, "-m", "mailbridge.cli", "serve", "--config", str(cfg)]
        if a.profile and a.profile.suffix == ".py":  # a wrapper script that runs the cli
            cmd = [a.python, str(a.profile.resolve()), *cmd[3:]]
        elif a.profile:
            cmd = [a.python, "-m", "cProfile", "-o", str(a.profile.resolve()), *cmd[1:]]
        else:
            cmd = [
                "valgrind", "--tool=callgrind", "--separate-threads=yes",
                f"--callgrind-out-file={out}", *cmd,
            ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(tree))
        proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 600
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"server exited with {proc.returncode}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                        s.recv(100)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("server did not start") from None
                    time.sleep(0.5)
            t = bench.TIMES["ingest-only"]
            send(port, [bench.mail(i, t) for i in range(a.warm)], a.shape)
            if not a.profile:
                subprocess.run(
                    ["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True
                )
            send(port, [bench.mail(a.warm + i, t) for i in range(a.mails)], a.shape)
            if a.profile:
                print(f"sent; profile in {a.profile}")
                return 0
            subprocess.run(
                ["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True
            )
            dumps = sorted(folder.glob("callgrind.out*"))
            per_thread = []  # callgrind's "summary": the events since the counters were zeroed
            for dump in dumps:
                m = re.search(r"^summary: (\d+)", dump.read_text(errors="replace"), re.M)
                if m and int(m.group(1)) and dump.name != "callgrind.out":
                    per_thread.append(int(m.group(1)))
            total = sum(per_thread)
            threads = " + ".join(f"{n / a.mails / 1e6:.4f}" for n in per_thread)
            if a.out:
                for dump in dumps:
                    (a.out.parent / (a.out.name + dump.suffix)).write_bytes(dump.read_bytes())
            print(
                f"{tree.name} shape={a.shape} mails={a.mails} instructions/mail="
                f"{total / a.mails / 1e6:.4f} M (threads: {threads})"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
