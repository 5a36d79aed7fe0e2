"""Fixtures for integration tests: a real gateway on 127.0.0.1:0, a real smarthost, real clients.

* ``start_daemon(**overrides)`` starts :class:`mailbridge.runtime.app.Gateway` in the
  test's event loop on a fresh SQLite file, from a config built in code
  (a dict written out as TOML and read by ``parse_config``, so the real
  config path is exercised);
* ``smarthost`` is an aiosmtpd server collecting the reply mails;
* ``proc_daemon`` runs ``python -m mailbridge.cli serve`` as a subprocess
  (for ``kill -9``);
* ``tls_files`` is a self-signed certificate made with ``openssl``;
* ``start_clocked_daemon(overrides, clock=FakeClock(...))`` is ``start_daemon``
  on a clock the test moves by hand (scheduled mail without waiting).

Blocking clients (smtplib, swaks) run in threads or subprocesses: the gateway
shares the test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import os
import quopri
import shutil
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP

from mailbridge.core.config import parse_config
from mailbridge.core.passwords import hash_password
from mailbridge.runtime.app import Gateway
from mailbridge.settings import Settings
from mailbridge.storage.base import RequestDetail
from tests.tools import skip_unless_ci

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pw"
PASSWORD_HASH = hash_password(PASSWORD)
APIKEY = "K3Y-0123456789"
COMMAND_TO = "send@sms.example.com"
SENDER = "ops@example.com"

Overrides = Mapping[str, Any]


# --- config built in code ----------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    raise TypeError(type(value))


def to_toml(doc: Mapping[str, Any]) -> str:
    """A small TOML writer: tables of scalars/lists/inline tables, arrays of tables."""
    lines: list[str] = []
    for section, body in doc.items():
        if isinstance(body, list):
            for item in body:
                lines.append(f"[[{section}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
                lines.append("")
        else:
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
            lines.append("")
    return "\n".join(lines)


def base_config(tmp: Path, smarthost_port: int | None) -> dict[str, Any]:
    """The config every integration test starts from."""
    doc: dict[str, Any] = {
        "smtp": {
            "listen": ["127.0.0.1:0"],
            "hostname": "mx.test",
            "domains": ["sms.example.com", "localhost"],
            "trusted_networks": ["127.0.0.0/8", "::1/128"],
            "timeout_s": 30.0,
        },
        "storage": {"url": f"sqlite:///{tmp / 'mailbridge.db'}"},
        "delivery": {"retry_first_s": 0.2, "retry_max_s": 1.0},
        "reply": {"from": "mailbridge@sms.example.com", "timeout_s": 5.0},
        "accounts": [
            {
                "login": "alex",
                "password_hash": PASSWORD_HASH,
                "apikey": APIKEY,
                "senders": ["Alex"],
                "default_sender": "Alex",
                "groups": {"1": ["+79990000001", "+79990000002"]},
                "deny_text": ["(?i)casino"],
                "blacklist": ["+79990000099"],
            },
            {"login": "poor", "password": "pw", "balance": 1, "default_sender": "Poor"},
            {"login": "fenced", "password": "pw", "allowed_ips": ["10.0.0.0/8"]},
        ],
        "forward": [
            {
                "address": "oncall@sms.example.com",
                "account": "alex",
                "to": ["+79991112233", "G1"],
                "allowed_senders": ["zabbix@example.com"],
                "template": "{subject}: {body}",
                "max_parts": 2,
            }
        ],
        "number_addresses": {
            "enabled": True,
            "account": "alex",
            "allowed_senders": ["*@example.com"],
            "template": "{subject}: {body}",
            "max_parts": 1,
        },
        "providers": [{"name": "out", "type": "file", "path": str(tmp / "outbox.jsonl")}],
        "routing": {"default": ["out"]},
        "logging": {"level": "warning", "format": "json"},
    }
    if smarthost_port is not None:
        doc["reply"]["smarthost"] = f"127.0.0.1:{smarthost_port}"
    return doc


def merge(doc: dict[str, Any], overrides: Overrides) -> dict[str, Any]:
    """``doc`` with each section of ``overrides`` merged in (lists of tables replaced; a key
    given as None is taken out of its section)."""
    out = copy.deepcopy(doc)
    for section, body in overrides.items():
        if isinstance(body, dict) and isinstance(out.get(section), dict):
            out[section].update(body)
            for key in [k for k, v in body.items() if v is None]:
                del out[section][key]
        else:
            out[section] = body
    return out


def settings_from(doc: Mapping[str, Any]) -> Settings:
    return parse_config(to_toml(doc), source="<test>")


# --- mails ----------------------------------------------------------------------------


def make_mail(
    body: str,
    *,
    subject: str = "test",
    charset: str = "utf-8",
    mail_from: str = SENDER,
    to: str = COMMAND_TO,
    headers: Mapping[str, str] | None = None,
    cte: str = "8bit",
) -> bytes:
    """A plain-text mail as bytes (CRLF line ends), body encoded in ``charset``."""
    head = [
        f"From: {mail_from}",
        f"To: {to}",
        f"Subject: {subject}",
        "Message-ID: <test-1@example.com>",
        "MIME-Version: 1.0",
        f"Content-Type: text/plain; charset={charset}",
        f"Content-Transfer-Encoding: {cte}",
    ]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    payload = body.replace("\r\n", "\n").replace("\n", "\r\n").encode(charset)
    if cte == "base64":
        payload = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    elif cte == "quoted-printable":
        payload = quopri.encodestring(payload).replace(b"\n", b"\r\n")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + payload + b"\r\n"


def command(
    phones: str = "+79991234567",
    mes: str = "hello",
    *,
    login: str = "alex",
    psw: str = PASSWORD,
    id: str = "",
    time: str = "",
    options: str = "",
) -> str:
    """A command line of the SMSC grammar."""
    return f"{login}:{psw}:{id}:{time}:{options}:{phones}:{mes}"


# --- the smarthost -------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class Smarthost:
    """A real aiosmtpd server that keeps every mail it is given."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._changed = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=envelope.original_content,
            )
        )
        self._changed.set()
        return "250 2.0.0 queued"

    async def start(self, port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="smarthost.test", ident="sink"), "127.0.0.1", port
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def wait_for(self, n: int, timeout_s: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"smarthost got {len(self.received)} mails, wanted {n}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.received


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the gateway in-process ---------------------------------------------------------


@dataclass(kw_only=True)
class SmtpTarget:
    """Where a gateway listens, and the ways to send it mail."""

    host: str = "127.0.0.1"
    port: int = 0

    async def send(
        self,
        data: bytes | str,
        *,
        mail_from: str = SENDER,
        rcpts: tuple[str, ...] = (COMMAND_TO,),
        subject: str = "test",
        headers: Mapping[str, str] | None = None,
        charset: str = "utf-8",
    ) -> tuple[int, str]:
        """Send one mail with aiosmtplib; the SMTP answer to DATA (or the refusal)."""
        raw = (
            data
            if isinstance(data, bytes)
            else make_mail(
                data, subject=subject, headers=headers, charset=charset, mail_from=mail_from
            )
        )
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=10, start_tls=False)
        await client.connect()
        try:
            code, message = await self._transaction(client, raw, mail_from, rcpts)
        finally:
            with contextlib.suppress(Exception):
                await client.quit()
        return code, message

    @staticmethod
    async def _transaction(
        client: aiosmtplib.SMTP, raw: bytes, mail_from: str, rcpts: tuple[str, ...]
    ) -> tuple[int, str]:
        await client.ehlo()
        resp = await client.execute_command(f"MAIL FROM:<{mail_from}>".encode())
        if resp.code != 250:
            return resp.code, resp.message
        accepted = 0
        last = resp
        for rcpt in rcpts:
            last = await client.execute_command(f"RCPT TO:<{rcpt}>".encode())
            accepted += last.code == 250
        if not accepted:
            return last.code, last.message
        try:
            resp = await client.data(raw)
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        return resp.code, resp.message

    def send_smtplib(
        self, raw: bytes, *, mail_from: str = SENDER, rcpts: tuple[str, ...] = (COMMAND_TO,)
    ) -> tuple[int, str]:
        """Blocking: one mail with smtplib (run it in a thread)."""
        with smtplib.SMTP(self.host, self.port, timeout=10) as client:
            client.ehlo("client.test")
            client.mail(mail_from)
            for rcpt in rcpts:
                client.rcpt(rcpt)
            code, message = client.data(raw)
            return code, message.decode()


@dataclass(kw_only=True)
class Daemon(SmtpTarget):
    """A running in-process gateway and the ways to talk to it."""

    gateway: Gateway
    doc: dict[str, Any]
    tmp: Path

    @property
    def settings(self) -> Settings:
        return self.gateway.settings

    async def detail(self, request_id: str) -> RequestDetail:
        storage = self.gateway.storage
        assert storage is not None
        detail = await storage.show_request(request_id)
        assert detail is not None, request_id
        return detail


DaemonFactory = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def smarthost() -> AsyncIterator[Smarthost]:
    """A real SMTP server collecting reply mails."""
    sink = Smarthost()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def start_daemon(tmp_path: Path, smarthost: Smarthost) -> AsyncIterator[DaemonFactory]:
    """Start gateways from the base config merged with overrides; all stopped at the end."""
    started: list[Daemon] = []

    async def start(overrides: Overrides | None = None, *, reply: bool = True) -> Daemon:
        folder = tmp_path / f"d{len(started)}"
        folder.mkdir()
        doc = merge(base_config(folder, smarthost.port if reply else None), overrides or {})
        gateway = Gateway(settings_from(doc))
        await gateway.start()
        host, port = gateway.addresses[0]
        daemon = Daemon(gateway=gateway, doc=doc, tmp=folder, host=host, port=port)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        await daemon.gateway.stop(drain_s=1.0)


@pytest.fixture
async def daemon(start_daemon: DaemonFactory) -> Daemon:
    """The gateway with the base config, replies going to ``smarthost``."""
    return await start_daemon()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for mx.test (made with openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_unless_ci("openssl is not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=mx.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


# --- the gateway as a subprocess ------------------------------------------------------


class ProcDaemon:
    """``mailbridge serve`` in a child process, on a fixed port, for kill -9 tests."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config = config
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0, *, keep_notify: bool = False) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if not keep_notify:
            env.pop("NOTIFY_SOCKET", None)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailbridge.cli", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.config.parent),
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(64).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("daemon did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout_s)


@pytest.fixture
def proc_daemon(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], ProcDaemon]]:
    """Make (not start) subprocess daemons from a config dict; all killed at the end."""
    made: list[ProcDaemon] = []

    def make(doc: dict[str, Any]) -> ProcDaemon:
        port = free_port()
        doc = merge(doc, {"smtp": {"listen": [f"127.0.0.1:{port}"]}})
        config = tmp_path / f"config{len(made)}.toml"
        config.write_text(to_toml(doc))
        daemon = ProcDaemon(config, port, tmp_path / f"daemon{len(made)}.log")
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.kill()


def header_names(msg: Message) -> list[str]:
    return [k.lower() for k in msg]


# --- the gateway in-process on a clock the test moves -----------------------------------


class FakeClock:
    """A UTC clock that stands still until the test moves it (``set``/``advance``)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


ClockedDaemonFactory = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def start_clocked_daemon(
    tmp_path: Path, smarthost: Smarthost
) -> AsyncIterator[ClockedDaemonFactory]:
    """Like ``start_daemon``, with ``clock=`` given to the gateway (dispatcher, mailer, SMTP)."""
    started: list[Daemon] = []

    async def start(
        overrides: Overrides | None = None,
        *,
        clock: Callable[[], datetime],
        reply: bool = True,
    ) -> Daemon:
        folder = tmp_path / f"clocked{len(started)}"
        folder.mkdir()
        doc = merge(base_config(folder, smarthost.port if reply else None), overrides or {})
        gateway = Gateway(settings_from(doc), clock=clock)
        await gateway.start()
        host, port = gateway.addresses[0]
        daemon = Daemon(gateway=gateway, doc=doc, tmp=folder, host=host, port=port)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        await daemon.gateway.stop(drain_s=1.0)
