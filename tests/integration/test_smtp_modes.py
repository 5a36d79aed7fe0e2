"""End to end over SMTP: each mode, each error number, each client, charsets."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from mailbridge.core.answers import parse_result_line
from tests.tools import skip_unless_ci

from .conftest import (
    APIKEY,
    COMMAND_TO,
    SENDER,
    Daemon,
    DaemonFactory,
    Smarthost,
    command,
    make_mail,
)


async def outbox(daemon: Daemon, request_id: str, n: int, timeout_s: float = 5.0) -> list[Any]:
    """The file provider's records of ``request_id`` once there are ``n`` of them."""
    path = Path(daemon.tmp / "outbox.jsonl")

    def read() -> list[Any]:
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [r for r in map(json.loads, lines) if r["request_id"] == request_id]

    deadline = time.monotonic() + timeout_s
    records = await asyncio.to_thread(read)
    while len(records) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        records = await asyncio.to_thread(read)
    return records


def request_id(message: str) -> str:
    rid = parse_result_line(message.split(" ", 1)[1]).request_id
    assert rid is not None
    return rid


class TestCommandMode:
    async def test_ok_stored_and_delivered(self, daemon: Daemon) -> None:
        """A command mail gets 250 with the OK line; its SMS rows are stored and sent."""
        code, message = await daemon.send(command("+79991234567, 8 (999) 123-45-68", "hi"))
        assert (code, message) == (250, "2.0.0 OK - 2 SMS, ID - 1")
        detail = await daemon.detail("1")
        assert sorted(s.recipient for s in detail.sms) == ["+79991234567", "+79991234568"]
        records = await outbox(daemon, "1", 2)
        assert {r["text"] for r in records} == {"hi"}
        assert {r["sender"] for r in records} == {"Alex"}

    async def test_client_id_and_list_mode(self, daemon: Daemon) -> None:
        """The client's id is the request ID; list mode sends one text per line."""
        body = command("", "+79991234567:first\n+79991234568:second\\nline", id="abc-7")
        code, message = await daemon.send(body)
        assert (code, message) == (250, "2.0.0 OK - 2 SMS, ID - abc-7")
        records = await outbox(daemon, "abc-7", 2)
        assert sorted(r["text"] for r in records) == ["first", "second\nline"]

    async def test_api_key(self, daemon: Daemon) -> None:
        """An empty login takes the password as an API key."""
        code, message = await daemon.send(command(login="", psw=APIKEY))
        assert (code, message) == (250, "2.0.0 OK - 1 SMS, ID - 1")

    async def test_group_and_parts(self, daemon: Daemon) -> None:
        """n counts parts × recipients; G1 expands to the account's group."""
        code, message = await daemon.send(command("G1", "x" * 161))
        assert (code, message) == (250, "2.0.0 OK - 4 SMS, ID - 1")

    async def test_smtplib_client(self, daemon: Daemon) -> None:
        """smtplib (stdlib, blocking) gets the same answer."""
        raw = make_mail(command())
        code, message = await asyncio.to_thread(daemon.send_smtplib, raw)
        assert (code, message) == (250, "2.0.0 OK - 1 SMS, ID - 1")

    async def test_swaks_client(self, daemon: Daemon, tmp_path: Path) -> None:
        """swaks (the Debian package) gets the same answer."""
        swaks = shutil.which("swaks")
        if swaks is None:
            skip_unless_ci("swaks is not installed (CI installs it: apt-get install swaks)")
        proc = await asyncio.create_subprocess_exec(
            swaks, "--server", f"{daemon.host}:{daemon.port}", "--from", SENDER,
            "--to", COMMAND_TO, "--header", "Subject: via swaks", "--body", command(),
            "--hide-all",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        detail = await daemon.detail("1")
        assert detail.summary.result == "OK - 1 SMS, ID - 1"

    @pytest.mark.parametrize(
        ("charset", "cte"),
        [("koi8-r", "8bit"), ("cp1251", "base64"), ("utf-8", "quoted-printable")],
    )
    async def test_charsets(self, daemon: Daemon, charset: str, cte: str) -> None:
        """Cyrillic text in KOI8-R, CP1251 and UTF-8 arrives as the same SMS text."""
        text = "Привет, мир: сервер упал"
        raw = make_mail(command(mes=text), charset=charset, cte=cte)
        code, message = await daemon.send(raw)
        assert code == 250, message
        records = await outbox(daemon, request_id(message), 1)
        assert [r["text"] for r in records] == [text]


class TestErrorNumbers:
    @pytest.mark.parametrize(
        ("body", "line"),
        [
            ("no colons at all", "ERROR = 1 (Error in parameters)"),
            (command(psw="wrong"), "ERROR = 2 (Invalid login or password)"),
            (command(login="nobody"), "ERROR = 2 (Invalid login or password)"),
            (command(login="fenced", psw="pw"), "ERROR = 2 (Invalid login or password)"),
            (command(login="poor", psw="pw", phones="+79991234567,+79991234568"),
             "ERROR = 3 (Insufficient funds), ID - 1"),
            (command(time="99.99.99 99.99"), "ERROR = 5 (Invalid date format)"),
            (command(mes="win at the CASINO"), "ERROR = 6 (Message denied), ID - 1"),
            (command(options=",,Mallory"), "ERROR = 6 (Message denied), ID - 1"),
            (command(phones="123"), "ERROR = 7 (Invalid phone number format), ID - 1"),
            (command(phones="+79990000099"), "ERROR = 8 (Message cannot be delivered), ID - 1"),
        ],
    )  # fmt: skip
    async def test_error_in_250_and_reply(
        self, daemon: Daemon, smarthost: Smarthost, body: str, line: str
    ) -> None:
        """Each error number: 250 with the error line, and the same line mailed back."""
        code, message = await daemon.send(body)
        assert (code, message) == (250, f"2.0.0 {line}")
        received = await smarthost.wait_for(1)
        assert received[0].message.get_content().strip() == line

    async def test_bot_prefix_refused(self, daemon: Daemon) -> None:
        """No provider carries Telegram bot messages: __BOT__ is ERROR = 1, nothing stored."""
        code, message = await daemon.send(command("#ops_team", "__BOT__: disk full"))
        assert (code, message) == (250, "2.0.0 ERROR = 1 (Error in parameters)")
        detail = await daemon.detail("1")
        assert detail.sms == ()

    async def test_duplicate_9(self, daemon: Daemon) -> None:
        """The third identical request within the window gets ERROR 9."""
        answers = [(await daemon.send(command(mes="same")))[1] for _ in range(3)]
        assert answers == [
            "2.0.0 OK - 1 SMS, ID - 1",
            "2.0.0 OK - 1 SMS, ID - 2",
            "2.0.0 ERROR = 9 (Duplicate request, wait a minute)",
        ]

    async def test_flood_8(self, start_daemon: DaemonFactory) -> None:
        """More than flood_max messages to one number in a row get ERROR 8."""
        daemon = await start_daemon({"limits": {"flood_max": 2, "duplicate_max": 10}})
        answers = [(await daemon.send(command(mes=f"m{i}")))[1] for i in range(3)]
        assert answers[2] == "2.0.0 ERROR = 8 (Message cannot be delivered), ID - 3"

    async def test_ip_block_4(self, start_daemon: DaemonFactory, smarthost: Smarthost) -> None:
        """After error_block_after errors the client IP gets ERROR 4, nothing stored or sent."""
        daemon = await start_daemon({"limits": {"error_block_after": 2}})
        for _ in range(2):
            await daemon.send(command(psw="wrong"))
        code, message = await daemon.send(command())
        assert (code, message) == (250, "2.0.0 ERROR = 4 (IP address temporarily blocked)")
        await smarthost.wait_for(2)
        storage = daemon.gateway.storage
        assert storage is not None
        assert len(await storage.list_requests()) == 2

    async def test_reject_mode(self, start_daemon: DaemonFactory, smarthost: Smarthost) -> None:
        """on_error = reject: errors are 550 5.7.1 (4: 450 4.7.1) and no reply mail goes."""
        daemon = await start_daemon(
            {"smtp": {"on_error": "reject"}, "limits": {"error_block_after": 2}}
        )
        assert await daemon.send(command(psw="wrong")) == (
            550,
            "5.7.1 ERROR = 2 (Invalid login or password)",
        )
        assert (await daemon.send(command(phones="123")))[0] == 550
        assert await daemon.send(command()) == (
            450,
            "4.7.1 ERROR = 4 (IP address temporarily blocked)",
        )
        await asyncio.sleep(0.3)
        assert smarthost.received == []


class TestForwardMode:
    async def test_forward(self, daemon: Daemon) -> None:
        """A forward alias sends the template text to its numbers; the answer is the 250 alone."""
        code, message = await daemon.send(
            "Disk /var is 99% full\n\n",
            rcpts=("oncall@sms.example.com",),
            mail_from="zabbix@example.com",
            subject="PROBLEM: disk",
        )
        assert (code, message) == (250, "2.0.0 OK - 3 SMS, ID - 1")
        records = await outbox(daemon, "1", 3)
        assert {r["text"] for r in records} == {"PROBLEM: disk: Disk /var is 99% full"}
        assert sorted(r["recipient"] for r in records) == [
            "+79990000001",
            "+79990000002",
            "+79991112233",
        ]

    async def test_forward_cut(self, daemon: Daemon) -> None:
        """A long text is cut to max_parts (2) parts ending with '...'."""
        code, message = await daemon.send(
            "word " * 10 + "\n" + "more words here\n" * 30,
            rcpts=("oncall@sms.example.com",),
            mail_from="zabbix@example.com",
        )
        assert (code, message) == (250, "2.0.0 OK - 6 SMS, ID - 1")
        records = await outbox(daemon, "1", 3)
        assert all(r["text"].endswith("...") for r in records)

    async def test_forward_sender_refused(self, daemon: Daemon) -> None:
        """A sender not in allowed_senders gets 550 at RCPT."""
        code, message = await daemon.send(
            "x", rcpts=("oncall@sms.example.com",), mail_from="other@example.com"
        )
        assert code == 550
        assert message.startswith("5.7.1")

    async def test_forward_error_in_session(self, start_daemon: DaemonFactory) -> None:
        """A forward mail refused by the rules is refused in the session, never replied."""
        daemon = await start_daemon(
            {"forward": [{"address": "oncall@sms.example.com", "account": "alex",
                          "to": ["+79990000099"], "allowed_senders": ["*@example.com"]}]}
        )  # fmt: skip
        code, message = await daemon.send("x", rcpts=("oncall@sms.example.com",))
        assert (code, message) == (550, "5.7.1 ERROR = 8 (Message cannot be delivered), ID - 1")


class TestNumberMode:
    async def test_several_numbers(self, daemon: Daemon) -> None:
        """Several number addresses in one mail: one request to all of them."""
        code, message = await daemon.send(
            "load high",
            rcpts=("+79991234567@sms.example.com", "89991234568@localhost"),
            subject="cron",
        )
        assert (code, message) == (250, "2.0.0 OK - 2 SMS, ID - 1")
        records = await outbox(daemon, "1", 2)
        assert {r["text"] for r in records} == {"cron: load high"}

    async def test_invalid_number_is_unknown(self, daemon: Daemon) -> None:
        """A number address that is not a valid number is not a mailbox: 550 5.1.1."""
        code, message = await daemon.send("x", rcpts=("12345@sms.example.com",))
        assert code == 550
        assert message.startswith("5.1.1")

    async def test_sender_refused(self, daemon: Daemon) -> None:
        """Number addresses obey allowed_senders."""
        code, _ = await daemon.send(
            "x", rcpts=("+79991234567@sms.example.com",), mail_from="a@elsewhere.org"
        )
        assert code == 550


class TestMailboxes:
    @pytest.mark.parametrize(
        "rcpt", ["nobody@sms.example.com", "send@other.example.org", "postmaster@localhost"]
    )
    async def test_unknown_recipient(self, daemon: Daemon, rcpt: str) -> None:
        """Anything but the gateway's mailboxes gets 550 5.1.1 at RCPT."""
        code, message = await daemon.send("x", rcpts=(rcpt,))
        assert code == 550
        assert message.startswith("5.1.1")

    async def test_mixed_modes(self, daemon: Daemon) -> None:
        """SPEC §3: a recipient of another mode joins the same mail (it was deferred with 452);
        the command and the alias are two requests of one 250."""
        import aiosmtplib

        client = aiosmtplib.SMTP(hostname=daemon.host, port=daemon.port, start_tls=False)
        await client.connect()
        await client.ehlo()
        await client.mail("zabbix@example.com")
        assert (await client.rcpt(COMMAND_TO)).code == 250
        assert (await client.rcpt("oncall@sms.example.com")).code == 250
        resp = await client.data(make_mail(command()))
        assert resp.message == "2.0.0 OK - 4 SMS, ID - 1, 2"
        await client.quit()

    async def test_canonical_log_line(self, daemon: Daemon) -> None:
        """One 'mail' log line per mail with the agreed keys and no password."""
        from structlog.testing import capture_logs

        with capture_logs() as logs:
            await daemon.send(command())
        lines = [e for e in logs if e["event"] == "mail"]
        assert len(lines) == 1
        line = lines[0]
        assert {"id", "account", "client_ip", "mode", "n", "result", "duration_ms"} <= set(line)
        assert (line["account"], line["n"], line["mode"]) == ("alex", 1, "command")
        assert "s3cret" not in repr(logs)
