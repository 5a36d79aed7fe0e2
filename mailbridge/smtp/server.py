"""The SMTP listeners: aiosmtpd as the shell, our handler inside (SPEC §2–3).

:class:`SmtpServer` opens one listening socket per ``[smtp] listen`` entry
with ``loop.create_server`` and a factory that builds one
:class:`~mailbridge.smtp.session.Session` per connection (no ``Controller``:
several listeners, IPv4 and IPv6, connection caps and a drain on shutdown).
The session refuses a connection over ``max_connections`` or
``max_connections_per_ip`` with ``421`` before any SMTP state is built
(:class:`~mailbridge.smtp.gate.ConnectionGate`).

The rest of the SMTP side, one job a module: ``session`` (every aiosmtpd
override), ``handler`` (MAIL/RCPT/DATA), ``auth`` (AUTH PLAIN/LOGIN),
``passwords`` (the hashing pool), ``gate`` (the connection counts).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence

from mailbridge.log import get_logger
from mailbridge.settings import Settings, SmtpSettings
from mailbridge.smtp.gate import ConnectionGate
from mailbridge.smtp.handler import PARSE_IN_THREAD_BYTES, MailHandler
from mailbridge.smtp.refusals import RefusalLog
from mailbridge.smtp.session import Session, simple_address
from mailbridge.smtp.untrusted import UntrustedPolicy

__all__ = [
    "PARSE_IN_THREAD_BYTES",
    "ConnectionGate",
    "MailHandler",
    "SmtpServer",
    "make_tls_context",
    "parse_listen",
    "simple_address",
]

log = get_logger("mailbridge.smtp")


def parse_listen(entry: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` → (host, port)."""
    text = entry.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address needs host:port: {entry!r}")
    return host, int(port)


def make_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 at least) from PEM files."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class SmtpServer:
    """The listeners: one ``asyncio.Server`` per ``[smtp] listen`` entry."""

    def __init__(
        self,
        handler: MailHandler,
        settings: Settings,
        *,
        listen: Sequence[str] | None = None,
        reuse_port: bool = False,
    ) -> None:
        """``listen`` replaces ``[smtp] listen`` (a worker gets the addresses its parent bound);
        ``reuse_port``: bind with ``SO_REUSEPORT``, sharing each address with other processes.
        """
        self.handler = handler
        self.gate = handler.gate
        self.refusals = RefusalLog()
        self._settings = settings
        self._listen = tuple(listen) if listen is not None else None
        self._reuse_port = reuse_port
        self._tls = self.make_tls(settings)
        self._servers: list[asyncio.base_events.Server] = []
        self._policy: tuple[SmtpSettings, ssl.SSLContext | None, UntrustedPolicy] | None = None

    @staticmethod
    def make_tls(settings: Settings) -> ssl.SSLContext | None:
        """The TLS context of ``settings`` (None without ``tls_cert``/``tls_key``)."""
        smtp = settings.smtp
        if smtp.tls_cert and smtp.tls_key:
            return make_tls_context(smtp.tls_cert, smtp.tls_key)
        return None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket (the real port when 0 was asked)."""
        out: list[tuple[str, int]] = []
        for server in self._servers:
            for sock in server.sockets:
                name = sock.getsockname()
                out.append((str(name[0]), int(name[1])))
        return out

    def _untrusted_policy(self, smtp: SmtpSettings) -> UntrustedPolicy:
        """The rules for untrusted sessions, made once per ``[smtp]`` settings and TLS context."""
        tls = self._tls
        cached = self._policy
        if cached is not None and cached[0] is smtp and cached[1] is tls:
            return cached[2]
        policy = UntrustedPolicy(
            trusted_networks=smtp.trusted_networks,
            timeout_s=smtp.untrusted_timeout_s,
            command_limit=smtp.untrusted_command_limit,
            share=smtp.untrusted_share,
            can_authenticate=tls is not None,
        )
        self._policy = (smtp, tls, policy)
        return policy

    def _factory(self) -> Session:
        smtp = self._settings.smtp
        return Session(
            self.gate,
            (smtp.max_connections, smtp.max_connections_per_ip),
            self.refusals,
            untrusted=self._untrusted_policy(smtp),
            handler=self.handler,
            data_size_limit=smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=smtp.hostname,
            ident=smtp.ident,
            tls_context=self._tls,
            require_starttls=bool(self._tls is not None and smtp.require_starttls),
            timeout=smtp.timeout_s,
            auth_require_tls=True,
            command_call_limit=smtp.command_call_limit,
        )

    async def start(self) -> None:
        """Open every listener (raises OSError when an address cannot be bound)."""
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        try:
            for entry in self._listen or self._settings.smtp.listen:
                host, port = parse_listen(entry)
                server = await loop.create_server(
                    self._factory,
                    host or None,
                    port,
                    reuse_address=True,
                    reuse_port=self._reuse_port or None,
                    backlog=512,
                )
                self._servers.append(server)
        except BaseException:
            await self.close_listeners()
            raise
        log.info("smtp_listening", addresses=[f"{h}:{p}" for h, p in self.addresses])

    def reload(self, settings: Settings, tls: ssl.SSLContext | None) -> None:
        """New limits, TLS context and mailboxes; listen addresses need a restart."""
        if settings.smtp.listen != self._settings.smtp.listen:
            log.warning("reload_listen_ignored", reason="listen addresses change on restart")
        self._tls = tls
        self._settings = settings
        self.handler.reload(settings)

    async def close_listeners(self) -> None:
        """Stop accepting connections; open sessions go on."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        self.gate.closing = True

    async def drain(self, timeout_s: float) -> bool:
        """Stop accepting, let sessions inside DATA finish (up to ``timeout_s``), close the rest.

        Returns False when some session was still in DATA at the deadline.
        """
        await self.close_listeners()
        done = await self.gate.wait_data_done(timeout_s)
        for session in list(self.gate.sessions):
            session.shutdown()
        await asyncio.sleep(0)
        return done
