"""Balances an operator can run: ``mailbridge balance`` shows what each account has left,
``mailbridge balance add`` tops it up in the database while the gateway runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from .conftest import DaemonFactory, command, to_toml


def _cli(*argv: str) -> tuple[int, str, str]:
    """``mailbridge ARGV`` in its own process: the daemon of the test logs to this one's stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "mailbridge.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


async def test_show_and_top_up(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    daemon = await start_daemon()
    config = tmp_path / "config.toml"
    config.write_text(to_toml(daemon.doc))

    assert (await daemon.send(command(login="poor", psw="pw", mes="one")))[1].startswith(
        "2.0.0 OK - 1 SMS"
    )
    refused = await daemon.send(command(login="poor", psw="pw", mes="two"))
    assert refused[1].startswith("2.0.0 ERROR = 3")

    code, out, _ = await asyncio.to_thread(_cli, "balance", "--config", str(config))
    assert code == 0
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert lines["poor"] == ["1", "1", "0"]  # balance, charged, left
    assert lines["alex"] == ["unlimited", "0", "unlimited"]

    code, out, _ = await asyncio.to_thread(
        _cli, "balance", "add", "poor", "5", "--config", str(config)
    )
    assert (code, out.strip()) == (0, "poor: +5 parts, 5 left")
    # the running gateway sees the top-up at the next request: no reload
    ok = await daemon.send(command(login="poor", psw="pw", mes="three"))
    assert ok[1].startswith("2.0.0 OK - 1 SMS")
    code, out, _ = await asyncio.to_thread(_cli, "balance", "list", "--config", str(config))
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert lines["poor"] == ["1", "-3", "4"]  # charged 1 + 1, topped up 5: 4 left


async def test_top_up_refusals(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    daemon = await start_daemon()
    config = tmp_path / "config.toml"
    config.write_text(to_toml(daemon.doc))
    code, _, err = await asyncio.to_thread(
        _cli, "balance", "add", "alex", "5", "--config", str(config)
    )
    assert code == 2
    assert "unlimited" in err
    code, _, err = await asyncio.to_thread(
        _cli, "balance", "add", "nobody", "5", "--config", str(config)
    )
    assert code == 1
    assert "no account 'nobody'" in err
