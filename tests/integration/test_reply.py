"""Reply mail: headers, suppression, header injection, smarthost down, no smarthost."""

from __future__ import annotations

import asyncio
import base64

import pytest

from .conftest import (
    SENDER,
    Daemon,
    DaemonFactory,
    Smarthost,
    command,
    free_port,
    header_names,
    make_mail,
    merge,
    settings_from,
)


class TestReplyMail:
    async def test_headers(self, daemon: Daemon, smarthost: Smarthost) -> None:
        """The reply: MAIL FROM:<>, To the sender, Re: subject, threading, Auto-Submitted."""
        code, _ = await daemon.send(command(options=",,,1"), subject="Backup")
        assert code == 250
        (got,) = await smarthost.wait_for(1)
        assert got.mail_from == "<>"
        assert got.rcpt_tos == [SENDER]
        msg = got.message
        assert msg["From"] == "mailbridge@sms.example.com"
        assert msg["To"] == SENDER
        assert msg["Subject"] == "Re: Backup"
        assert msg["In-Reply-To"] == "<test-1@example.com>"
        assert msg["References"] == "<test-1@example.com>"
        assert msg["Auto-Submitted"] == "auto-replied"
        assert msg["Message-ID"].endswith("@mx.test>")
        assert msg["Date"]
        assert msg.get_content().strip() == "OK - 1 SMS, ID - 1"

    async def test_no_reply_for_plain_ok(self, daemon: Daemon, smarthost: Smarthost) -> None:
        """test=0: an OK is answered in the session only; the next error is mailed."""
        await daemon.send(command())
        await daemon.send(command(phones="1"))
        (got,) = await smarthost.wait_for(1)
        assert got.message.get_content().strip().startswith("ERROR = 7")

    @pytest.mark.parametrize(
        ("mail_from", "headers"),
        [
            ("", {}),
            (SENDER, {"Auto-Submitted": "auto-generated"}),
            (SENDER, {"Precedence": "bulk"}),
            (SENDER, {"List-Id": "<ops.example.com>"}),
        ],
    )
    async def test_suppressed(
        self, daemon: Daemon, smarthost: Smarthost, mail_from: str, headers: dict[str, str]
    ) -> None:
        """No reply to the null sender, auto-submitted or list mail (the 250 still answers)."""
        raw = make_mail(command(psw="wrong"), headers=headers)
        code, message = await daemon.send(raw, mail_from=mail_from)
        assert (code, message) == (250, "2.0.0 ERROR = 2 (Invalid login or password)")
        # a mail that is replied to afterwards proves the mailer ran past the first one
        await daemon.send(command(psw="wrong", mes="second"), subject="marker")
        (got,) = await smarthost.wait_for(1)
        assert got.message["Subject"] == "Re: marker"

    async def test_header_injection(self, daemon: Daemon, smarthost: Smarthost) -> None:
        """CR/LF smuggled into the subject (RFC 2047) cannot add a header or a recipient."""
        evil = "hi\r\nBcc: victim@example.org\r\nX-Injected: 1"
        encoded = "=?utf-8?b?" + base64.b64encode(evil.encode()).decode() + "?="
        raw = make_mail(command(phones="1"), subject=encoded)
        await daemon.send(raw)
        (got,) = await smarthost.wait_for(1)
        assert got.rcpt_tos == [SENDER]
        names = header_names(got.message)
        assert "bcc" not in names
        assert "x-injected" not in names
        assert "\n" not in got.message["Subject"]

    async def test_rate_per_recipient(
        self, start_daemon: DaemonFactory, smarthost: Smarthost
    ) -> None:
        """Beyond reply_rate_per_hour replies to one address, no more are sent."""
        daemon = await start_daemon({"reply": {"reply_rate_per_hour": 2}})
        for i in range(3):
            await daemon.send(command(phones="1", mes=f"m{i}"))
        await daemon.send(command(phones="1"), mail_from="other@example.com")
        got = await smarthost.wait_for(3)
        assert sorted(r.rcpt_tos[0] for r in got) == [SENDER, SENDER, "other@example.com"]


class TestSmarthostTrouble:
    async def test_down_then_up(self, start_daemon: DaemonFactory) -> None:
        """Replies wait while the smarthost is down and go out once, when it is back."""
        port = free_port()
        daemon = await start_daemon({"reply": {"smarthost": f"127.0.0.1:{port}"}})
        await daemon.send(command(phones="1"))
        await daemon.send(command(options=",,,1"))
        await asyncio.sleep(0.5)  # at least one failed attempt
        late = Smarthost()
        await late.start(port)
        try:
            got = await late.wait_for(2, timeout_s=8)
            await asyncio.sleep(0.5)
            assert len(late.received) == 2
            assert sorted(r.message.get_content().strip()[:5] for r in got) == ["ERROR", "OK - "]
        finally:
            await late.stop()

    async def test_no_smarthost_then_reload(
        self, start_daemon: DaemonFactory, smarthost: Smarthost
    ) -> None:
        """Without a smarthost replies stay queued; a reload that sets one sends them."""
        daemon = await start_daemon(reply=False)
        await daemon.send(command(phones="1"))
        await asyncio.sleep(0.3)
        assert smarthost.received == []
        doc = merge(daemon.doc, {"reply": {"smarthost": f"127.0.0.1:{smarthost.port}"}})
        daemon.gateway.reload(settings_from(doc))
        (got,) = await smarthost.wait_for(1)
        assert got.message.get_content().startswith("ERROR = 7")
