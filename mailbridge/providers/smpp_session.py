"""One SMPP connection kept bound: connect, bind, window, ``enquire_link``, reconnect.

:class:`SmppSession` runs a loop for its whole life: connect (TLS if asked),
bind, read PDUs until the connection ends, then reconnect after a backoff
that doubles from ``reconnect_min_s`` to ``reconnect_max_s`` with jitter (a
uniformly drawn wait between half of it and all of it). A refused bind is
remembered (:attr:`SmppSession.refused`) and logged once per backoff, never
with the password.

:meth:`SmppSession.submit` writes one ``submit_sm`` once a slot of the
window is free and returns its response PDU (``submit_sm_resp`` or
``generic_nack``). A connection lost before the response raises
:class:`ConnectionLost`: the caller sends the SMS again (at-least-once).
Throttling answers (:meth:`SmppSession.slow_down`) pause every submit of the
session for a wait that doubles up to :data:`MAX_PAUSE_S` and ends at the
first success.

``deliver_sm`` are handed to ``on_deliver`` in tasks of their own (at most
:data:`DELIVER_CONCURRENCY` at once) and answered with the status it
returns, after it returned. ``enquire_link`` from the SMSC is answered,
``unbind`` too (then the session reconnects), any other request gets a
``generic_nack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailbridge.log import get_logger
from mailbridge.providers.smpp_codec import (
    Cmd,
    Pdu,
    PduReader,
    SmppCodecError,
    Status,
    bind_body,
    encode_pdu,
    status_name,
)
from mailbridge.settings import SmppSettings

__all__ = [
    "DELIVER_CONCURRENCY",
    "MAX_PAUSE_S",
    "BindRefused",
    "ConnectionLost",
    "SmppSession",
]

#: ``deliver_sm`` handled at once per connection.
DELIVER_CONCURRENCY = 64
#: Longest pause after throttling answers.
MAX_PAUSE_S = 10.0
_FIRST_PAUSE_S = 0.1
#: Wait for an ``unbind_resp`` when closing.
_UNBIND_WAIT_S = 2.0

OnDeliver = Callable[[Pdu], Awaitable[int]]


class ConnectionLost(Exception):
    """The connection ended before the response came."""


@dataclass(frozen=True, slots=True)
class BindRefused(Exception):
    """The SMSC answered the bind with an error status."""

    status: int

    def __str__(self) -> str:
        return f"bind refused: {status_name(self.status)}"


class SmppSession:
    """One connection of an SMPP provider; see the module docstring."""

    def __init__(
        self,
        *,
        provider: str,
        settings: SmppSettings,
        password: str,
        bind: Cmd,
        timeout_s: float,
        connect_timeout_s: float,
        on_deliver: OnDeliver | None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.provider = provider
        self._settings = settings
        self._password = password
        self._bind_cmd = bind
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._on_deliver = on_deliver
        self._rng = rng
        self._log = get_logger("mailbridge.smpp").bind(provider=provider, bind=bind.name.lower())
        self._window = asyncio.Semaphore(settings.window)
        self._seq = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._bound = asyncio.Event()
        self._changed = asyncio.Event()
        self._deliveries = asyncio.Semaphore(DELIVER_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._pause_until = 0.0
        self._pause_s = 0.0
        self._parser = PduReader()
        #: The status of the last bind, when it was refused (cleared by a bind that succeeds).
        self.refused: int | None = None
        self.binds = 0

    # --- life -------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def wait_change(self, timeout_s: float) -> None:
        """Return when the session binds or a bind is refused, or after ``timeout_s``."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()

    async def close(self, drain_s: float) -> None:
        """Stop reconnecting; let the window drain (at most ``drain_s``), unbind, disconnect."""
        self._closing = True
        if self._pending:
            await asyncio.wait(list(self._pending.values()), timeout=drain_s)
        writer = self._writer
        if writer is not None and self.bound:
            self._bound.clear()
            with contextlib.suppress(ConnectionLost, TimeoutError, OSError):
                async with asyncio.timeout(_UNBIND_WAIT_S):
                    await self._request(Cmd.UNBIND, b"")
            self._log.info("smpp unbound")
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _backoff(self, attempt: int) -> float:
        s = self._settings
        delay = min(s.reconnect_max_s, s.reconnect_min_s * 2.0 ** min(attempt, 30))
        return delay * (0.5 + 0.5 * self._rng())

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                reader = await self._connect()
            except BindRefused as exc:
                self.refused = exc.status
                wait = self._backoff(attempt)
                self._log.error(
                    "smpp bind refused",
                    status=status_name(exc.status),
                    system_id=self._settings.system_id,
                    retry_in_s=round(wait, 2),
                    hint="check system_id, password and system_type; SIGHUP reloads",
                )
            except (OSError, TimeoutError, ConnectionLost, SmppCodecError) as exc:
                wait = self._backoff(attempt)
                self._log.warning(
                    "smpp connect failed",
                    error=f"{type(exc).__name__}: {exc}"[:200],
                    retry_in_s=round(wait, 2),
                )
            except Exception:  # a bug must not end the session for good
                wait = self._backoff(attempt)
                self._log.exception("smpp session error", retry_in_s=round(wait, 2))
            else:
                attempt = -1
                try:
                    await self._serve(reader)
                except Exception:  # a bug must not end the session for good
                    self._log.exception("smpp session error")
                wait = 0.0 if self._closing else self._backoff(0)
                if not self._closing:
                    self._log.warning("smpp connection lost", retry_in_s=round(wait, 2))
            self._changed.set()
            attempt += 1
            if not self._closing:
                await asyncio.sleep(wait)

    async def _connect(self) -> asyncio.StreamReader:
        s = self._settings
        context: ssl.SSLContext | None = None
        if s.tls:
            context = ssl.create_default_context(cafile=s.tls_ca)
        async with asyncio.timeout(self._connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                s.host, s.port, ssl=context, server_hostname=s.host if context else None
            )
        self._writer = writer
        parser = self._parser = PduReader()
        sequence = next(self._seq)
        body = bind_body(system_id=s.system_id, password=self._password, system_type=s.system_type)
        writer.write(encode_pdu(self._bind_cmd, sequence, body))
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                while True:
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionLost("closed during bind")
                    for pdu in parser.feed(data):
                        if pdu.command_id == Cmd.GENERIC_NACK or pdu.command_id == (
                            self._bind_cmd | 0x80000000
                        ):
                            if pdu.status != Status.ROK:
                                raise BindRefused(pdu.status)
                            self.refused = None
                            self.binds += 1
                            self._bound.set()
                            self._log.info("smpp bound", host=s.host, port=s.port)
                            return reader
        except BaseException:
            writer.close()
            self._writer = None
            raise

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        """Read until the connection ends; then fail what waits for an answer."""
        self._changed.set()
        keeper = asyncio.get_running_loop().create_task(self._keep_alive())
        parser = self._parser
        try:
            for pdu in parser.feed(b""):  # what came with the bind_resp
                self._dispatch(pdu)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for pdu in parser.feed(data):
                    self._dispatch(pdu)
        except ConnectionLost:
            pass  # we closed it (enquire_link unanswered, unbind) while reading
        except (OSError, SmppCodecError) as exc:
            self._log.warning("smpp read failed", error=f"{type(exc).__name__}: {exc}"[:200])
        finally:
            keeper.cancel()
            self._bound.clear()
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
            pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost("connection lost"))

    def _dispatch(self, pdu: Pdu) -> None:
        command = pdu.command_id
        if command & 0x80000000:
            future = self._pending.pop(pdu.sequence, None)
            if future is not None and not future.done():
                future.set_result(pdu)
            elif command == Cmd.GENERIC_NACK:
                self._log.warning("smpp generic_nack", status=status_name(pdu.status))
            return
        if command == Cmd.DELIVER_SM:
            task = asyncio.get_running_loop().create_task(self._deliver(pdu))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif command == Cmd.ENQUIRE_LINK:
            self._write(encode_pdu(Cmd.ENQUIRE_LINK_RESP, pdu.sequence))
        elif command == Cmd.UNBIND:
            self._write(encode_pdu(Cmd.UNBIND_RESP, pdu.sequence))
            self._log.info("smpp unbind from the SMSC")
            self._bound.clear()
            if self._writer is not None:
                self._writer.close()
        else:
            self._write(encode_pdu(Cmd.GENERIC_NACK, pdu.sequence, status=Status.RINVCMDID))

    async def _deliver(self, pdu: Pdu) -> None:
        writer = self._writer
        async with self._deliveries:
            status: int = Status.RX_T_APPN
            if self._on_deliver is not None:
                status = await self._on_deliver(pdu)
        if writer is self._writer:  # not on a new connection: its sequence numbers differ
            with contextlib.suppress(ConnectionLost):  # lost: the SMSC delivers it again
                self._write(encode_pdu(Cmd.DELIVER_SM_RESP, pdu.sequence, b"\x00", status=status))

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._settings.enquire_link_s)
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._request(Cmd.ENQUIRE_LINK, b"")
            except TimeoutError:
                self._log.warning("smpp enquire_link unanswered: reconnecting")
                if self._writer is not None:
                    self._writer.close()
                return
            except ConnectionLost:
                return

    def _write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise ConnectionLost("not connected")
        writer.write(data)

    async def _request(self, command: int, body: bytes) -> Pdu:
        sequence = next(self._seq) & 0x7FFFFFFF or next(self._seq)
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        try:
            self._write(encode_pdu(command, sequence, body))
            return await future
        finally:
            self._pending.pop(sequence, None)

    # --- submits ------------------------------------------------------------------

    async def submit(self, body: bytes) -> Pdu:
        """One ``submit_sm``; its response PDU. Raises :class:`ConnectionLost`, ``TimeoutError``."""
        async with self._window:
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not self.bound:
                raise ConnectionLost("not bound")
            async with asyncio.timeout(self._timeout_s):
                pdu = await self._request(Cmd.SUBMIT_SM, body)
            if pdu.status == Status.ROK and pdu.command_id == Cmd.SUBMIT_SM_RESP:
                self._pause_s = 0.0
            return pdu

    def slow_down(self) -> float:
        """Pause the session's submits after a throttling answer; the pause in seconds."""
        self._pause_s = min(MAX_PAUSE_S, max(_FIRST_PAUSE_S, self._pause_s * 2))
        self._pause_until = max(self._pause_until, time.monotonic() + self._pause_s)
        return self._pause_s
