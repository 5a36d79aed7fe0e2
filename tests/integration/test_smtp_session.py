"""The aiosmtpd overrides of ``mailbridge.smtp.session``, through real SMTP sessions.

What each override relies on in aiosmtpd's source: tests/unit/test_smtp_session.py.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from .conftest import COMMAND_TO, SENDER, Daemon, DaemonFactory, command, make_mail


async def _client(daemon: Daemon) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname=daemon.host, port=daemon.port, timeout=10, start_tls=False)
    await client.connect()
    await client.ehlo()
    return client


class TestGetaddr:
    async def test_both_paths_take_the_same_mailbox(self, daemon: Daemon) -> None:
        """``<a@b>`` (the regex path) and forms only aiosmtpd reads name the same mailbox."""
        client = await _client(daemon)
        try:
            for mail_from, rcpt in (
                (f"<{SENDER}>", f"<{COMMAND_TO}>"),
                (SENDER, COMMAND_TO),  # no angle brackets: aiosmtpd's parser
                (f'<"ops"@{SENDER.split("@")[1]}>', f'<"send"@{COMMAND_TO.split("@")[1]}>'),
            ):
                resp = await client.execute_command(f"MAIL FROM:{mail_from}".encode())
                assert resp.code == 250, mail_from
                resp = await client.execute_command(f"RCPT TO:{rcpt}".encode())
                assert (resp.code, rcpt) == (250, rcpt)
                await client.rset()
        finally:
            await client.quit()

    async def test_malformed_addresses_get_aiosmtpd_answer(self, daemon: Daemon) -> None:
        """What the regex does not take falls through to aiosmtpd, which refuses it."""
        client = await _client(daemon)
        try:
            for arg in ("<a@@b.example>", "<@>", "@"):
                resp = await client.execute_command(f"MAIL FROM:{arg}".encode())
                assert resp.code == 553, arg
                assert "malformed address" in resp.message, arg
        finally:
            await client.quit()


class TestCreateEnvelope:
    async def test_each_transaction_has_its_own_routes(self, daemon: Daemon) -> None:
        """The routes of a mail do not leak into the next one of the same session."""
        client = await _client(daemon)
        try:
            for _ in range(2):
                assert (await client.execute_command(f"MAIL FROM:<{SENDER}>".encode())).code == 250
                resp = await client.execute_command(b"RCPT TO:<+79991234567@sms.example.com>")
                assert resp.code == 250
                resp = await client.data(make_mail("body", subject="alert", mail_from=SENDER))
                assert resp.code == 250
            assert (await client.execute_command(f"MAIL FROM:<{SENDER}>".encode())).code == 250
            resp = await client.execute_command(f"RCPT TO:<{COMMAND_TO}>".encode())
            assert resp.code == 250  # a number route left over would make this 452
            resp = await client.data(make_mail(command(), mail_from=SENDER))
            assert (resp.code, resp.message) == (250, "2.0.0 OK - 1 SMS, ID - 3")
        finally:
            await client.quit()


class TestHookTables:
    async def test_commands_hooks_and_auth_are_found(self, daemon: Daemon) -> None:
        """The short dir() still exposes every command and the handler's AUTH mechanisms."""
        client = await _client(daemon)
        try:
            for verb in (b"NOOP", b"HELP", b"RSET"):
                assert (await client.execute_command(verb)).code in (250, 214)
            resp = await client.execute_command(b"VRFY someone")
            assert resp.code == 252
            resp = await client.execute_command(b"AUTH PLAIN")
            assert resp.code == 538  # the handler's mechanisms exist, and require TLS
            resp = await client.execute_command(b"MAIL FROM:<nobody@example.com>")
            assert resp.code == 250  # handle_MAIL found: trusted network
        finally:
            await client.quit()


class TestGate:
    async def test_caps_and_release(self, start_daemon: DaemonFactory) -> None:
        """Over ``max_connections_per_ip`` the gate answers 421; a closed session frees its slot."""
        daemon = await start_daemon({"smtp": {"max_connections_per_ip": 1}})
        first = await _client(daemon)
        second = aiosmtplib.SMTP(
            hostname=daemon.host, port=daemon.port, timeout=10, start_tls=False
        )
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as info:
            await second.connect()
        assert info.value.code == 421
        await first.quit()
        for _ in range(100):  # the server sees the QUIT'ed connection close a moment later
            third = aiosmtplib.SMTP(
                hostname=daemon.host, port=daemon.port, timeout=10, start_tls=False
            )
            try:
                await third.connect()
            except aiosmtplib.SMTPConnectResponseError:
                await asyncio.sleep(0.02)
                continue
            await third.quit()
            break
        else:
            raise AssertionError("the slot was never released")
