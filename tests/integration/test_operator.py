"""What an operator does to a running ``mailbridge serve``: reload by PID file, change logging."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import ProcDaemon, Smarthost, SmtpTarget, base_config, command, merge, to_toml


async def _wait_for(path: Path, text: str, timeout_s: float = 10.0) -> str:
    def read() -> str:
        return path.read_text() if path.exists() else ""

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = await asyncio.to_thread(read)
        if text in content:
            return content
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}")


async def test_pid_file_reload_by_kill_hup(
    tmp_path: Path, smarthost: Smarthost, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """``[daemon] pid_file`` (relative to the config folder) holds the PID once serve is ready;
    ``kill -HUP "$(cat FILE)"`` reloads; the file is gone after SIGTERM."""
    doc = merge(
        base_config(tmp_path, smarthost.port),
        {"daemon": {"pid_file": "run/mb.pid"}, "logging": {"level": "info", "format": "json"}},
    )
    proc = proc_daemon(doc)
    await asyncio.to_thread(proc.start)
    assert proc.proc is not None
    pid_file = proc.config.parent / "run" / "mb.pid"
    assert await _wait_for(pid_file, "\n") == f"{proc.proc.pid}\n"
    out = await asyncio.to_thread(
        subprocess.run, ["sh", "-c", f'kill -HUP "$(cat {pid_file})"'], check=False
    )
    assert out.returncode == 0
    await _wait_for(proc.log, "reloaded")
    assert proc.proc.poll() is None
    assert await asyncio.to_thread(proc.terminate) == 0
    assert not pid_file.exists()


async def test_logging_change_applied_on_sighup(
    tmp_path: Path, smarthost: Smarthost, proc_daemon: Callable[[dict[str, Any]], ProcDaemon]
) -> None:
    """``[logging] level`` changed and SIGHUP: the new level applies (before: silently kept)."""
    doc = merge(base_config(tmp_path, smarthost.port), {"logging": {"level": "warning"}})
    proc = proc_daemon(doc)
    await asyncio.to_thread(proc.start)
    assert proc.proc is not None
    target = SmtpTarget(port=proc.port)
    code, _ = await target.send(command(mes="quiet"))
    assert code == 250
    await asyncio.sleep(0.3)
    quiet = await asyncio.to_thread(proc.log.read_text)
    assert '"event": "mail"' not in quiet  # info lines are off at warning

    louder = merge(
        doc, {"smtp": {"listen": [f"127.0.0.1:{proc.port}"]}, "logging": {"level": "info"}}
    )
    proc.config.write_text(to_toml(louder))
    proc.proc.send_signal(signal.SIGHUP)
    await _wait_for(proc.log, "logging_reloaded")
    code, _ = await target.send(command(mes="loud"))
    assert code == 250
    await _wait_for(proc.log, '"event": "mail"')
