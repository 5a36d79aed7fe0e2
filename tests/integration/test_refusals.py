"""One ``refused`` log line for every refusal (connect, MAIL, RCPT, DATA), with client IP,
sender, recipient, code and reason; a per-IP budget keeps a flood from filling the disk."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from typing import Any

from structlog.testing import capture_logs

from mailbridge.smtp.refusals import PER_WINDOW

from .conftest import DaemonFactory, make_mail


def _refused(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("event") == "refused"]


def _transaction(port: int, sender: str, rcpts: list[str], body: bytes | None) -> list[int]:
    codes: list[int] = []
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.example.com")
        codes.append(client.mail(sender)[0])
        for rcpt in rcpts:
            codes.append(client.rcpt(rcpt)[0])
        if body is not None:
            codes.append(client.data(body)[0])
    return codes


async def test_rcpt_refusals_are_logged(start_daemon: DaemonFactory) -> None:
    """550 5.1.1 (no such mailbox), 550 5.7.1 (sender not allowed) and 452 at RCPT each write
    one line naming IP, sender, recipient, code and reason (they wrote none)."""
    daemon = await start_daemon()
    with capture_logs() as logs:
        codes = await asyncio.to_thread(
            _transaction, daemon.port, "stranger@elsewhere.test",
            ["nobody@sms.example.com", "oncall@sms.example.com"], None,
        )  # fmt: skip
    assert codes == [250, 550, 550]
    lines = _refused(logs)
    assert [(e["stage"], e["code"], e["recipient"]) for e in lines] == [
        ("RCPT", "550", "nobody@sms.example.com"),
        ("RCPT", "550", "oncall@sms.example.com"),
    ]
    assert all(e["client_ip"] == "127.0.0.1" for e in lines)
    assert all(e["sender"] == "stranger@elsewhere.test" for e in lines)
    assert "no such mailbox" in lines[0]["reason"]
    assert lines[0]["log_level"] == "warning"


async def test_data_refusal_is_logged(start_daemon: DaemonFactory) -> None:
    """An in-session error at DATA (number mode: 550 5.7.1 ERROR = 6) is a refused line too."""
    daemon = await start_daemon()
    raw = make_mail("casino tonight", to="+79991234567@sms.example.com")
    with capture_logs() as logs:
        codes = await asyncio.to_thread(
            _transaction, daemon.port, "ops@example.com", ["+79991234567@sms.example.com"], raw
        )
    assert codes[-1] == 550
    (line,) = _refused(logs)
    assert (line["stage"], line["code"]) == ("DATA", "550")
    assert line["reason"].startswith("5.7.1 ERROR = 6")
    assert line["recipient"] == "+79991234567@sms.example.com"
    assert "casino" not in str(line)  # never the text


def _two_connections(port: int) -> None:
    """A second connection while the first is open (421), then MAIL on the first (530)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
        assert first.recv(100).startswith(b"220")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
            assert second.recv(100).startswith(b"421")
        first.sendall(b"EHLO x\r\nMAIL FROM:<ops@example.com>\r\n")
        data = b""
        while b"530" not in data:
            chunk = first.recv(1000)
            assert chunk, data
            data += chunk


async def test_mail_and_connect_refusals_are_logged(start_daemon: DaemonFactory) -> None:
    """530 at MAIL (client not trusted) and 421 at connect (over max_connections_per_ip)."""
    daemon = await start_daemon(
        {"smtp": {"trusted_networks": ["10.0.0.0/8"], "max_connections_per_ip": 1}}
    )
    with capture_logs() as logs:
        await asyncio.to_thread(_two_connections, daemon.port)
    stages = [(e["stage"], e["code"]) for e in _refused(logs)]
    assert ("connect", "421") in stages
    assert ("MAIL", "530") in stages
    mail = next(e for e in _refused(logs) if e["stage"] == "MAIL")
    assert mail["sender"] == "ops@example.com"


async def test_flood_of_refusals_is_rate_limited(start_daemon: DaemonFactory) -> None:
    """90 refused RCPTs from one IP write PER_WINDOW lines, not 90."""
    daemon = await start_daemon()
    rcpts = [f"nobody{i}@sms.example.com" for i in range(90)]
    with capture_logs() as logs:
        codes = await asyncio.to_thread(_transaction, daemon.port, "ops@example.com", rcpts, None)
    assert codes.count(550) == 90
    assert len(_refused(logs)) == PER_WINDOW
