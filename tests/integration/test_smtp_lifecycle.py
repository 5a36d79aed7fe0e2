"""Running it: drain on stop, reload without dropping connections, signals, sd_notify, systemd."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from tests.tools import skip_unless_ci

from .conftest import (
    COMMAND_TO,
    ROOT,
    SENDER,
    Daemon,
    DaemonFactory,
    ProcDaemon,
    Smarthost,
    SmtpTarget,
    base_config,
    command,
    make_mail,
    merge,
    settings_from,
    to_toml,
)


async def open_client(daemon: Daemon) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname=daemon.host, port=daemon.port, start_tls=False)
    await client.connect()
    await client.ehlo()
    return client


class TestDrain:
    async def test_mail_in_data_finishes(self, daemon: Daemon) -> None:
        """Stopping lets a session inside DATA get its 250; new connections are refused."""
        client = await open_client(daemon)
        await client.mail(SENDER)
        await client.rcpt(COMMAND_TO)
        resp = await client.execute_command(b"DATA")
        assert resp.code == 354
        raw = make_mail(command())
        client.transport.write(raw[:40])  # type: ignore[union-attr]
        stopping = asyncio.create_task(daemon.gateway.stop(drain_s=5.0))
        await asyncio.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(daemon.host, daemon.port)
        client.transport.write(raw[40:] + b".\r\n")  # type: ignore[union-attr]
        answer = await client.protocol.read_response(timeout=5)  # type: ignore[union-attr]
        assert (answer.code, answer.message) == (250, "2.0.0 OK - 1 SMS, ID - 1")
        assert await stopping is True
        client.close()

    async def test_idle_session_told_421(self, daemon: Daemon) -> None:
        """An idle session gets 421 when the gateway stops."""
        reader, writer = await asyncio.open_connection(daemon.host, daemon.port)
        assert (await reader.readline()).startswith(b"220")
        await daemon.gateway.stop(drain_s=1.0)
        assert (await reader.readline()).startswith(b"421")
        writer.close()


class TestReload:
    async def test_reload_keeps_connections(self, daemon: Daemon) -> None:
        """A reload adds an account; an open session stays and sees it on its next mail."""
        client = await open_client(daemon)
        doc = merge(daemon.doc, {})
        doc["accounts"] = [*doc["accounts"], {"login": "newbie", "password": "pw2"}]
        daemon.gateway.reload(settings_from(doc))
        await client.mail(SENDER)
        await client.rcpt(COMMAND_TO)
        resp = await client.data(make_mail(command(login="newbie", psw="pw2")))
        assert resp.message == "2.0.0 OK - 1 SMS, ID - 1"
        await client.quit()


def notify_socket(tmp: Path) -> tuple[socket.socket, str]:
    path = str(tmp / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    return sock, path


def wait_for_state(sock: socket.socket, state: str) -> list[str]:
    seen: list[str] = []
    while True:
        lines = sock.recv(4096).decode().splitlines()
        seen.extend(lines)
        if state in lines:
            return seen


class TestServeProcess:
    async def test_signals_and_notify(
        self,
        tmp_path: Path,
        smarthost: Smarthost,
        proc_daemon: Callable[[dict[str, Any]], ProcDaemon],
    ) -> None:
        """serve: READY=1; SIGHUP reloads (a bad config is refused); SIGTERM exits 0."""
        doc = base_config(tmp_path, smarthost.port)
        proc = proc_daemon(doc)
        sock, path = notify_socket(tmp_path)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            await asyncio.to_thread(proc.start, 15.0, keep_notify=True)
        finally:
            del os.environ["NOTIFY_SOCKET"]
        assert "READY=1" in await asyncio.to_thread(wait_for_state, sock, "READY=1")
        target = SmtpTarget(port=proc.port)

        assert (await target.send(command(login="newbie", psw="pw2")))[1].startswith(
            "2.0.0 ERROR = 2"
        )
        good = merge(doc, {"smtp": {"listen": [f"127.0.0.1:{proc.port}"]}})
        good["accounts"] = [*good["accounts"], {"login": "newbie", "password": "pw2"}]
        proc.config.write_text(to_toml(good))
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        seen = await asyncio.to_thread(wait_for_state, sock, "READY=1")
        assert "RELOADING=1" in seen
        assert (await target.send(command(login="newbie", psw="pw2")))[1].startswith("2.0.0 OK")

        proc.config.write_text("[smtp]\nlisten = 5\n")
        proc.proc.send_signal(signal.SIGHUP)
        await asyncio.to_thread(wait_for_state, sock, "READY=1")
        assert (await target.send(command(login="newbie", psw="pw2", mes="again")))[1].startswith(
            "2.0.0 OK"
        )
        assert "reload_refused" in proc.log.read_text()

        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in await asyncio.to_thread(wait_for_state, sock, "STOPPING=1")
        assert await asyncio.to_thread(proc.proc.wait, 20) == 0
        assert time.monotonic() - started < 15
        sock.close()


class TestSystemdUnit:
    def test_verify(self, tmp_path: Path) -> None:
        """systemd/mailbridge.service passes systemd-analyze verify."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            skip_unless_ci("systemd-analyze is not installed")
        exe = shutil.which("mailbridge") or str(ROOT / ".venv" / "bin" / "mailbridge")
        if not Path(exe).exists():
            skip_unless_ci("no mailbridge executable to point the unit at")
        text = (ROOT / "systemd" / "mailbridge.service").read_text()
        unit = tmp_path / "mailbridge.service"
        unit.write_text(text.replace("/opt/mailbridge/bin/mailbridge", exe))
        result = subprocess.run(
            [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        for key in (
            "Type=notify",
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "StateDirectory=mailbridge",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "WatchdogSec=",
        ):
            assert key in text, key  # fmt: skip


class TestListeners:
    async def test_ipv4_and_ipv6(self, start_daemon: DaemonFactory) -> None:
        """One gateway listens on 127.0.0.1 and [::1]; a mail over each gets its 250."""
        daemon = await start_daemon({"smtp": {"listen": ["127.0.0.1:0", "[::1]:0"]}})
        addresses = daemon.gateway.addresses
        assert {host for host, _ in addresses} == {"127.0.0.1", "::1"}
        answers = []
        for host, port in addresses:
            target = replace(daemon, host=host, port=port)
            answers.append(await target.send(command(mes=f"over {host}")))
        assert sorted(message for _, message in answers) == [
            "2.0.0 OK - 1 SMS, ID - 1",
            "2.0.0 OK - 1 SMS, ID - 2",
        ]
        detail = await daemon.detail("2")
        assert detail.client_ip in {"127.0.0.1", "::1"}
        first = await daemon.detail("1")
        assert {first.client_ip, detail.client_ip} == {"127.0.0.1", "::1"}
