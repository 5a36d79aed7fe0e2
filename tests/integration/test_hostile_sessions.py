"""Hostile SMTP clients: password guessing, undecodable addresses, sessions that hold slots."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiosmtplib
import pytest

from .conftest import COMMAND_TO, PASSWORD, SENDER, Daemon, DaemonFactory, command, make_mail
from .test_smtp_security import UNTRUSTED, client_tls, tls_daemon


async def tls_client(daemon: Daemon, *, source: str | None = None) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(
        hostname=daemon.host,
        port=daemon.port,
        start_tls=False,
        tls_context=client_tls(),
        source_address=(source, 0) if source else None,
        timeout=10,
    )
    await client.connect()
    await client.starttls()
    await client.ehlo()
    return client


class TestAuthGuessing:
    async def test_auth_failures_block_the_ip(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """error_block_after wrong AUTH block the IP: then even the right password is refused."""
        daemon = await tls_daemon(start_daemon, tls_files, untrusted_command_limit=100)
        client = await tls_client(daemon)
        after = daemon.settings.limits.error_block_after
        for _ in range(after):
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
                await client.auth_plain("alex", "guess")
            assert info.value.code == 535
        with pytest.raises(aiosmtplib.SMTPResponseException) as blocked:
            await client.auth_plain("alex", PASSWORD)
        assert blocked.value.code == 454
        assert "4.7.0" in blocked.value.message
        await client.quit()

        other = await tls_client(daemon)  # a new session from the same IP: still blocked
        with pytest.raises(aiosmtplib.SMTPResponseException) as again:
            await other.auth_plain("alex", PASSWORD)
        assert again.value.code == 454
        await other.quit()

    async def test_ip_blocked_by_mail_errors_cannot_authenticate(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """An IP under the ERROR = 4 block gets 454 to AUTH, even with the right password."""
        cert, key = tls_files
        daemon = await start_daemon(
            {
                "smtp": {"tls_cert": str(cert), "tls_key": str(key)},
                "limits": {"error_block_after": 2},
            }
        )
        for _ in range(2):  # loopback is trusted here: two mails with a wrong password
            _, message = await daemon.send(command(psw="wrong"))
            assert "ERROR = 2" in message
        _, message = await daemon.send(command())
        assert "ERROR = 4" in message
        client = await tls_client(daemon)
        with pytest.raises(aiosmtplib.SMTPResponseException) as info:
            await client.auth_plain("alex", PASSWORD)
        assert info.value.code == 454
        await client.quit()

    async def test_right_password_before_the_block(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """Fewer failures than the limit: the right password still logs in."""
        daemon = await tls_daemon(start_daemon, tls_files, untrusted_command_limit=100)
        client = await tls_client(daemon)
        for _ in range(daemon.settings.limits.error_block_after - 1):
            with pytest.raises(aiosmtplib.SMTPAuthenticationError):
                await client.auth_plain("alex", "guess")
        await client.auth_plain("alex", PASSWORD)
        await client.mail(SENDER)
        await client.rcpt(COMMAND_TO)
        resp = await client.data(make_mail(command()))
        assert resp.message.startswith("2.0.0 OK - 1 SMS")
        await client.quit()


class TestAddressBytes:
    @pytest.mark.parametrize(
        ("line", "code"),
        [
            (b"MAIL FROM:<\xff\xfe@localhost>", b"5"),
            (b"MAIL FROM:<\xd0\xbf@localhost>", b"5"),  # UTF-8 without SMTPUTF8
        ],
    )
    async def test_bad_sender_bytes_refused_at_mail(
        self, daemon: Daemon, line: bytes, code: bytes
    ) -> None:
        """Bytes that are not UTF-8, or 8-bit without SMTPUTF8: 5xx at MAIL, never 250 then 451."""

        def talk() -> list[bytes]:
            with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"EHLO client.test\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                s.sendall(line + b"\r\n")
                return [f.readline()]

        (answer,) = await asyncio.to_thread(talk)
        assert answer[:1] == code, answer

    async def test_bad_recipient_bytes_refused_at_rcpt(self, daemon: Daemon) -> None:
        """An RCPT address with bytes that are not UTF-8 gets a 5xx at RCPT."""

        def talk() -> bytes:
            with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"EHLO client.test\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                s.sendall(b"MAIL FROM:<ops@example.com>\r\n")
                assert f.readline().startswith(b"250")
                s.sendall(b"RCPT TO:<+7999\xff\xfe@sms.example.com>\r\n")
                return f.readline()

        answer = await asyncio.to_thread(talk)
        assert answer.startswith(b"5"), answer

    async def test_utf8_sender_with_smtputf8_is_taken(self, daemon: Daemon) -> None:
        """A UTF-8 sender announced with SMTPUTF8 is a valid sender (250 at MAIL)."""

        def talk() -> bytes:
            with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"EHLO client.test\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                s.sendall("MAIL FROM:<опс@example.com> SMTPUTF8\r\n".encode())
                return f.readline()

        answer = await asyncio.to_thread(talk)
        assert answer.startswith(b"250"), answer


class TestUntrustedSessions:
    TRUSTED_SOURCE = "127.0.0.2"

    def untrusted_config(self, **smtp: object) -> dict[str, object]:
        return {
            "smtp": {
                "trusted_networks": [f"{self.TRUSTED_SOURCE}/32"],
                "max_connections": 8,
                "max_connections_per_ip": 8,
                **smtp,
            }
        }

    async def test_noop_does_not_keep_an_untrusted_session(
        self, start_daemon: DaemonFactory
    ) -> None:
        """An untrusted session sending NOOP is closed after the untrusted timeout anyway."""
        daemon = await start_daemon(self.untrusted_config(untrusted_timeout_s=1.0))

        def hold() -> tuple[float, bytes]:
            started = time.monotonic()
            with socket.create_connection((daemon.host, daemon.port), timeout=10) as s:
                f = s.makefile("rb")
                f.readline()
                while time.monotonic() - started < 8:
                    try:
                        s.sendall(b"NOOP\r\n")
                        line = f.readline()
                    except OSError:
                        return time.monotonic() - started, b"<reset>"
                    if not line or line.startswith(b"421"):
                        return time.monotonic() - started, line
                    time.sleep(0.2)
            return time.monotonic() - started, b"<still open>"

        held_s, last = await asyncio.to_thread(hold)
        assert last != b"<still open>"
        assert held_s < 4

    async def test_untrusted_command_budget(self, start_daemon: DaemonFactory) -> None:
        """An untrusted, unauthenticated session gets a small command budget, then 421."""
        daemon = await start_daemon(self.untrusted_config(untrusted_command_limit=5))

        def spend() -> int:
            with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
                f = s.makefile("rb")
                f.readline()
                for n in range(1, 50):
                    s.sendall(b"NOOP\r\n")
                    line = f.readline()
                    if not line.startswith(b"250"):
                        return n
            return 50

        assert await asyncio.to_thread(spend) <= 6

    async def test_trusted_sender_gets_a_slot(self, start_daemon: DaemonFactory) -> None:
        """Untrusted sessions fill only their share: a trusted sender is still served."""
        daemon = await start_daemon(self.untrusted_config())

        def fill() -> list[socket.socket]:
            held = []
            for _ in range(20):
                s = socket.create_connection((daemon.host, daemon.port), timeout=5)
                held.append(s)
                s.recv(1024)
            return held

        held = await asyncio.to_thread(fill)
        try:
            client = aiosmtplib.SMTP(
                hostname=daemon.host,
                port=daemon.port,
                source_address=(self.TRUSTED_SOURCE, 0),
                timeout=5,
            )
            await client.connect()
            await client.ehlo()
            await client.mail(SENDER)
            await client.rcpt(COMMAND_TO)
            resp = await client.data(make_mail(command()))
            assert resp.message.startswith("2.0.0 OK - 1 SMS")
            await client.quit()
        finally:
            for s in held:
                s.close()

    async def test_refused_session_is_closed(self, start_daemon: DaemonFactory) -> None:
        """Without TLS an untrusted client can never submit: after 530 the session is closed."""
        daemon = await start_daemon({"smtp": UNTRUSTED})

        def talk() -> list[bytes]:
            with socket.create_connection((daemon.host, daemon.port), timeout=5) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"EHLO client.test\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                s.sendall(b"MAIL FROM:<ops@example.com>\r\n")
                first = f.readline()
                try:
                    s.sendall(b"NOOP\r\n")
                    second = f.readline()
                except OSError:
                    second = b""
                return [first, second]

        first, second = await asyncio.to_thread(talk)
        assert first.startswith(b"530")
        assert second == b"" or second.startswith(b"421")
