"""Who may submit, TLS and AUTH, size and connection caps, smuggling and injection."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from pathlib import Path

import aiosmtplib
import pytest

from .conftest import COMMAND_TO, PASSWORD, SENDER, Daemon, DaemonFactory, command, make_mail

UNTRUSTED = {"trusted_networks": ["192.0.2.0/24"]}


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def tls_daemon(
    start_daemon: DaemonFactory, tls_files: tuple[Path, Path], **smtp: object
) -> Daemon:
    cert, key = tls_files
    return await start_daemon(
        {"smtp": {**UNTRUSTED, "tls_cert": str(cert), "tls_key": str(key), **smtp}}
    )


async def starttls_client(daemon: Daemon) -> aiosmtplib.SMTP:
    """A client connected to ``daemon``, after STARTTLS and EHLO."""
    client = aiosmtplib.SMTP(
        hostname=daemon.host, port=daemon.port, start_tls=False, tls_context=client_tls()
    )
    await client.connect()
    await client.starttls()
    await client.ehlo()
    return client


class Wire:
    """A raw SMTP conversation over a blocking socket (run in a thread)."""

    def __init__(self, daemon: Daemon) -> None:
        self.sock = socket.create_connection((daemon.host, daemon.port), timeout=5)
        self.buf = b""

    def reply(self) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return [*lines, b"<closed>"]
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    def say(self, data: bytes) -> list[bytes]:
        self.sock.sendall(data)
        return self.reply()

    def close(self) -> None:
        self.sock.close()


class TestSubmissionRights:
    async def test_untrusted_needs_auth(self, start_daemon: DaemonFactory) -> None:
        """A client outside trusted_networks without AUTH is refused at MAIL."""
        daemon = await start_daemon({"smtp": UNTRUSTED})
        code, message = await daemon.send(command())
        assert code == 530
        assert message.startswith("5.7.0")

    async def test_no_auth_without_tls(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """AUTH is not offered before STARTTLS and refused if tried."""
        daemon = await tls_daemon(start_daemon, tls_files)
        client = aiosmtplib.SMTP(hostname=daemon.host, port=daemon.port, start_tls=False)
        await client.connect()
        await client.ehlo()
        assert not client.supports_extension("auth")
        assert client.supports_extension("starttls")
        blob = base64.b64encode(f"\0alex\0{PASSWORD}".encode()).decode()
        resp = await client.execute_command(f"AUTH PLAIN {blob}".encode())
        assert resp.code == 538
        await client.quit()

    @pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
    async def test_starttls_auth_submit(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path], mechanism: str
    ) -> None:
        """After STARTTLS and AUTH with an account's password, an untrusted client may submit."""
        daemon = await tls_daemon(start_daemon, tls_files)
        client = aiosmtplib.SMTP(
            hostname=daemon.host, port=daemon.port, start_tls=False, tls_context=client_tls()
        )
        await client.connect()
        await client.starttls()
        await client.ehlo()
        assert client.supports_extension("auth")
        if mechanism == "PLAIN":
            await client.auth_plain("alex", PASSWORD)
        else:
            await client.auth_login("alex", PASSWORD)
        await client.mail(SENDER)
        await client.rcpt(COMMAND_TO)
        resp = await client.data(make_mail(command()))
        assert resp.message == "2.0.0 OK - 1 SMS, ID - 1"
        await client.quit()

    async def test_bad_auth(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """Wrong credentials get 535 and no right to submit."""
        client = await starttls_client(await tls_daemon(start_daemon, tls_files))
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await client.auth_plain("alex", "nope")
        assert info.value.code == 535
        with pytest.raises(aiosmtplib.SMTPSenderRefused):
            await client.mail(SENDER)
        await client.quit()

    async def test_auth_initial_responses_and_challenges(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """Bad base64 or a PLAIN value without two NULs get 501; LOGIN asked step by step works."""
        client = await starttls_client(await tls_daemon(start_daemon, tls_files))
        for mechanism in (b"PLAIN", b"LOGIN"):
            resp = await client.execute_command(b"AUTH " + mechanism + b" !!notbase64")
            assert (resp.code, resp.message) == (501, "5.5.2 Can't decode base64")
        no_nuls = base64.b64encode(b"alex" + PASSWORD.encode())
        resp = await client.execute_command(b"AUTH PLAIN " + no_nuls)
        assert (resp.code, resp.message) == (501, "5.5.2 Can't split auth value")
        resp = await client.execute_command(b"AUTH LOGIN")
        assert (resp.code, base64.b64decode(resp.message)) == (334, b"User Name\x00")
        resp = await client.execute_command(base64.b64encode(b"alex"))
        assert (resp.code, base64.b64decode(resp.message)) == (334, b"Password\x00")
        resp = await client.execute_command(base64.b64encode(PASSWORD.encode()))
        assert resp.code == 235
        await client.mail(SENDER)
        await client.rcpt(COMMAND_TO)
        resp = await client.data(make_mail(command()))
        assert resp.message == "2.0.0 OK - 1 SMS, ID - 1"
        await client.quit()

    async def test_require_starttls(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """require_starttls: MAIL before STARTTLS gets 530, even from a trusted client."""
        cert, key = tls_files
        daemon = await start_daemon(
            {"smtp": {"tls_cert": str(cert), "tls_key": str(key), "require_starttls": True}}
        )
        code, _ = await daemon.send(command())
        assert code == 530

    async def test_starttls_command_injection(
        self, start_daemon: DaemonFactory, tls_files: tuple[Path, Path]
    ) -> None:
        """Commands pipelined after STARTTLS in clear text are discarded (CVE-2011-0411 class)."""
        cert, key = tls_files
        daemon = await start_daemon({"smtp": {"tls_cert": str(cert), "tls_key": str(key)}})

        def talk() -> list[bytes]:
            wire = Wire(daemon)
            wire.reply()
            wire.say(b"EHLO client.test\r\n")
            ready = wire.say(b"STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n")
            assert ready[0].startswith(b"220")
            wire.sock = client_tls().wrap_socket(wire.sock, server_hostname="mx.test")
            wire.buf = b""
            wire.say(b"EHLO client.test\r\n")
            answer = wire.say(b"RCPT TO:<send@sms.example.com>\r\n")
            wire.close()
            return answer

        answer = await asyncio.to_thread(talk)
        assert answer[0].startswith(b"503"), answer  # the injected MAIL never happened


class TestDataSafety:
    async def test_oversize(self, start_daemon: DaemonFactory) -> None:
        """A mail above max_message_size gets 552; nothing is stored."""
        daemon = await start_daemon({"smtp": {"max_message_size": 2000}})
        code, _ = await daemon.send(command(mes="x" * 500) + "\n" + ("y" * 70 + "\n") * 40)
        assert code == 552
        storage = daemon.gateway.storage
        assert storage is not None
        assert list(await storage.list_requests()) == []

    async def test_oversize_declared(self, start_daemon: DaemonFactory) -> None:
        """A SIZE= above the limit is refused at MAIL with 552."""
        daemon = await start_daemon({"smtp": {"max_message_size": 2000}})
        client = aiosmtplib.SMTP(hostname=daemon.host, port=daemon.port, start_tls=False)
        await client.connect()
        await client.ehlo()
        resp = await client.execute_command(b"MAIL FROM:<ops@example.com> SIZE=5000")
        assert resp.code == 552
        await client.quit()

    @pytest.mark.parametrize("eod", [b"\n.\n", b"\r\n.\n", b"\n.\r\n"])
    async def test_smtp_smuggling(self, daemon: Daemon, eod: bytes) -> None:
        """A bare-LF end of data does not end the mail: no second mail is smuggled in."""
        head = make_mail(command(mes="first"))
        smuggled = (
            b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<send@sms.example.com>\r\nDATA\r\n"
            + make_mail(command(mes="smuggled"))
        )

        def talk() -> list[list[bytes]]:
            wire = Wire(daemon)
            wire.reply()
            wire.say(b"EHLO client.test\r\n")
            wire.say(b"MAIL FROM:<ops@example.com>\r\n")
            wire.say(b"RCPT TO:<send@sms.example.com>\r\n")
            wire.say(b"DATA\r\n")
            answers = [wire.say(head + eod + smuggled + b".\r\n")]
            wire.sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                answers.append(wire.reply())
            wire.close()
            return answers

        answers = await asyncio.to_thread(talk)
        assert len(answers) == 1
        assert answers[0][0].startswith(b"250")
        storage = daemon.gateway.storage
        assert storage is not None
        assert len(await storage.list_requests()) == 1

    async def test_internal_error_is_451(self, daemon: Daemon) -> None:
        """A failing storage gives 451 4.3.0 without internals, never 250."""
        from mailbridge.errors import StorageError

        storage = daemon.gateway.storage
        assert storage is not None
        original = storage.accept

        async def broken(*args: object, **kwargs: object) -> None:
            raise StorageError("database is locked at /secret/path")

        storage.accept = broken  # type: ignore[method-assign,assignment]
        try:
            code, message = await daemon.send(command())
        finally:
            storage.accept = original  # type: ignore[method-assign]
        assert code == 451
        assert message.startswith("4.3.0")
        assert "secret" not in message
        assert "locked" not in message

    async def test_unexpected_error_is_451(self, daemon: Daemon) -> None:
        """Any unexpected exception in the handler is a 451 with no internals."""
        storage = daemon.gateway.storage
        assert storage is not None
        original = storage.ip_blocked

        async def broken(*args: object, **kwargs: object) -> bool:
            raise ZeroDivisionError("internal detail")

        storage.ip_blocked = broken  # type: ignore[method-assign]
        try:
            code, message = await daemon.send(command())
        finally:
            storage.ip_blocked = original  # type: ignore[method-assign]
        assert code == 451
        assert "internal" not in message.lower() or message.startswith("4.3.0")
        assert "ZeroDivision" not in message


class TestConnectionCaps:
    @pytest.mark.parametrize(
        "smtp", [{"max_connections_per_ip": 2}, {"max_connections": 2, "max_connections_per_ip": 2}]
    )
    async def test_cap(self, start_daemon: DaemonFactory, smtp: dict[str, int]) -> None:
        """Over the cap a connection gets 421 at once; below it again, it is served."""
        daemon = await start_daemon({"smtp": smtp})

        def greeting() -> tuple[socket.socket, bytes]:
            sock = socket.create_connection((daemon.host, daemon.port), timeout=5)
            return sock, sock.recv(1024)

        held = [await asyncio.to_thread(greeting) for _ in range(2)]
        assert all(g.startswith(b"220") for _, g in held)
        extra, answer = await asyncio.to_thread(greeting)
        assert answer.startswith(b"421")
        extra.close()
        held[0][0].close()
        await asyncio.sleep(0.1)
        sock, answer = await asyncio.to_thread(greeting)
        assert answer.startswith(b"220")
        sock.close()
        held[1][0].close()
