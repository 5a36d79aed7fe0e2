"""AUTH guessing against the password checks of trusted senders.

    .venv/bin/python bench/bench_auth.py [--guessers 8] [--accounts 6]

Starts ``mailbridge serve`` (child process, TLS, loopback 127.0.0.2 trusted,
127.0.0.1 not) with accounts whose passwords are scrypt hashes, so the first
mail of each account runs a real password check (≈ 35 ms of CPU). It sends
one mail per account from the trusted address with nobody guessing, then
one per further account while ``--guessers`` sessions from the untrusted
address send wrong ``AUTH PLAIN`` as fast as they are answered (the IP block
is set out of reach so they go on). Prints the median time from the end of
DATA to the 250 in both phases, their ratio, and how many guesses were
answered per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailbridge.core.passwords import hash_password  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config(folder: Path, port: int, accounts: int, cert: Path, key: Path) -> str:
    lines = [
        "[smtp]",
        f'listen = ["127.0.0.1:{port}", "127.0.0.2:{port}"]',
        'hostname = "mx.test"',
        'domains = ["localhost"]',
        'trusted_networks = ["127.0.0.2/32"]',
        f'tls_cert = "{cert}"',
        f'tls_key = "{key}"',
        "untrusted_command_limit = 1000000",
        "untrusted_timeout_s = 600",
        "[storage]",
        f'url = "sqlite:///{folder / "mb.db"}"',
        "[limits]",
        "error_block_after = 1000000",
        "[logging]",
        'level = "warning"',
        'format = "json"',
    ]
    for i in range(accounts):
        lines += ["[[accounts]]", f'login = "a{i}"', f'password_hash = "{hash_password(f"pw{i}")}"']
    lines += ["[[providers]]", 'name = "f"', 'type = "file"', f'path = "{folder / "out.jsonl"}"']
    return "\n".join(lines) + "\n"


async def one_mail(port: int, login: str, password: str) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.2", port, local_addr=("127.0.0.2", 0))
    await reader.readline()
    for line in (b"EHLO b.test", b"MAIL FROM:<b@example.com>", b"RCPT TO:<send@localhost>"):
        writer.write(line + b"\r\n")
        while (await reader.readline())[3:4] == b"-":
            pass
    writer.write(b"DATA\r\n")
    await reader.readline()
    body = f"Subject: x\r\n\r\n{login}:{password}::1440:::+79991234567:hi\r\n.\r\n".encode()
    writer.write(body)
    started = time.perf_counter()
    answer = await reader.readline()
    elapsed = time.perf_counter() - started
    assert answer.startswith(b"250"), answer
    writer.close()
    return elapsed


async def guesser(port: int, stop: asyncio.Event, counter: list[int]) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    import aiosmtplib

    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, tls_context=ctx)
    await client.connect()
    await client.starttls()
    await client.ehlo()
    while not stop.is_set():
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.auth_plain("a0", "guess")
        counter[0] += 1
    client.close()


async def measure(port: int, args: argparse.Namespace) -> tuple[list[float], list[float], float]:
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.2", port), 1):
            break
        await asyncio.sleep(0.05)
    idle = [await one_mail(port, f"a{i}", f"pw{i}") for i in range(args.accounts)]
    stop, counter = asyncio.Event(), [0]
    tasks = [asyncio.create_task(guesser(port, stop, counter)) for _ in range(args.guessers)]
    await asyncio.sleep(1.0)
    started, before = time.perf_counter(), counter[0]
    loaded = [
        await one_mail(port, f"a{i}", f"pw{i}") for i in range(args.accounts, 2 * args.accounts)
    ]
    guesses = (counter[0] - before) / (time.perf_counter() - started)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return idle, loaded, guesses


def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=mx.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    cfg = folder / "c.toml"
    cfg.write_text(config(folder, port, 2 * args.accounts, cert, key))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbridge.cli", "serve", "--config", str(cfg)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        idle, loaded, guesses = asyncio.run(measure(port, args))
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(folder, ignore_errors=True)
    idle_ms, loaded_ms = statistics.median(idle) * 1e3, statistics.median(loaded) * 1e3
    print(f"first password check, median DATA->250: idle {idle_ms:.0f} ms, "
          f"with {args.guessers} guessing sessions {loaded_ms:.0f} ms "
          f"(ratio {loaded_ms / idle_ms:.2f}); guesses answered {guesses:.0f}/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guessers", type=int, default=8)
    parser.add_argument("--accounts", type=int, default=6)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
