"""A fake SMSC: SMPP 3.4 over real TCP on loopback, faults on demand.

Built on ``smpplib``'s PDU codec (its ``command`` classes), never on
mailbridge's own SMPP code, so a mistake in the gateway's codec cannot hide
behind the same mistake here. Every bind, ``submit_sm`` (with the status it
was answered), ``enquire_link``, ``unbind`` and ``deliver_sm_resp`` is
recorded in memory.

Faults, changed at run time through :attr:`FakeSmsc.faults`:

* ``bind_status``: every bind refused with this status (``0x0E`` bad
  password, ``0x0D`` bind failed); 0 accepts binds whose password matches;
* ``throttle`` / ``queue_full`` / ``nack`` / ``syserr``: the next N
  ``submit_sm`` answered ``ESME_RTHROTTLED``, ``ESME_RMSGQFUL``,
  ``generic_nack`` or ``ESME_RSYSERR``;
* ``reject``: destination → status, answered every time (``0x0B`` invalid
  destination address);
* ``delay_s``: every ``submit_sm_resp`` sent this late (responses stay in
  order of arrival only when the delay is the same);
* ``drop_after``: after this many more ``submit_sm`` arrive, the connection is
  closed with them unanswered (submits in flight at a lost connection);
* ``silent``: ``submit_sm`` are read and never answered;
* ``mute_enquire_link``: ``enquire_link`` are counted and never answered;
* ``receipts``: ``"none"``, ``"after"`` (a receipt right after the
  ``submit_sm_resp``), ``"before"`` (the receipt goes out before the
  ``submit_sm_resp``) or ``"hold"`` (kept until :meth:`FakeSmsc.flush_receipts`,
  which can send them in reverse order); ``receipt_stat``/``receipt_err``
  choose what they say, ``receipt_tlvs`` whether the TLVs accompany the text.

:meth:`FakeSmsc.deliver` sends a mobile-originated ``deliver_sm`` (one part or
several, with a UDH or SAR TLVs) to a session that can receive, and waits
for its ``deliver_sm_resp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import struct
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from smpplib import smpp  # type: ignore[import-untyped]

__all__ = ["BoundSession", "FakeSmsc", "SmscFaults", "SubmitRecord"]

ESME_ROK = 0x00
ESME_RSYSERR = 0x08
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVDSTADR = 0x0B
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58

_RECEIVERS = frozenset({"bind_receiver", "bind_transceiver"})
_TRANSMITTERS = frozenset({"bind_transmitter", "bind_transceiver"})


class _Seq:
    """The "client" smpplib's PDU classes ask for a sequence number; we set our own."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


_CLIENT = _Seq()


def _pdu(name: str, *, sequence: int, status: int = 0, **fields: Any) -> bytes:
    pdu = smpp.make_pdu(name, client=_CLIENT, **fields)
    pdu.sequence = sequence
    pdu.status = status
    data: bytes = pdu.generate()
    return data


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


@dataclass(slots=True)
class SmscFaults:
    bind_status: int = 0
    throttle: int = 0
    queue_full: int = 0
    nack: int = 0
    syserr: int = 0
    reject: dict[str, int] = field(default_factory=dict)
    delay_s: float = 0.0
    drop_after: int | None = None
    silent: bool = False
    receipts: str = "none"  # none | after | before | hold
    receipt_stat: str = "DELIVRD"
    receipt_err: str = "000"
    receipt_tlvs: bool = True
    mute_enquire_link: bool = False


@dataclass(frozen=True, slots=True)
class SubmitRecord:
    """One ``submit_sm`` as it arrived, and what it was answered."""

    session: int
    sequence: int
    system_id: str
    service_type: str
    source: str
    source_ton: int
    source_npi: int
    destination: str
    dest_ton: int
    dest_npi: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    status: int
    message_id: str | None
    at: float

    @property
    def udh(self) -> bytes:
        if not self.esm_class & 0x40 or not self.short_message:
            return b""
        return self.short_message[: self.short_message[0] + 1]

    @property
    def payload(self) -> bytes:
        return self.short_message[len(self.udh) :]

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """(reference, total, sequence) from an 8- or 16-bit concatenation UDH."""
        udh = self.udh[1:]
        while len(udh) >= 2:
            iei, length = udh[0], udh[1]
            body = udh[2 : 2 + length]
            if iei == 0x00 and length == 3:
                return body[0], body[1], body[2]
            if iei == 0x08 and length == 4:
                return (body[0] << 8) | body[1], body[2], body[3]
            udh = udh[2 + length :]
        return None


@dataclass(slots=True)
class BoundSession:
    """One bound connection."""

    number: int
    bind: str
    system_id: str
    password: str
    system_type: str
    writer: asyncio.StreamWriter
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    waiting: dict[int, asyncio.Future[int]] = field(default_factory=dict)
    unbound: bool = False

    @property
    def receives(self) -> bool:
        return self.bind in _RECEIVERS

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


class FakeSmsc:
    """An SMPP server on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        *,
        system_id: str = "client",
        password: str = "secret",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        self.system_id = system_id
        self.password = password
        self.faults = SmscFaults()
        self.binds: list[tuple[str, str, str, int]] = []  # (bind, system_id, system_type, status)
        self.submits: list[SubmitRecord] = []
        self.enquire_links = 0
        self.unbinds = 0
        self.unbind_resps = 0
        self.nacks_received: list[int] = []
        self.sessions: list[BoundSession] = []
        self.held_receipts: list[tuple[BoundSession, bytes]] = []
        self.connections = 0
        self._ids = itertools.count(0x1000)
        self._numbers = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def unbind_all(self) -> None:
        """Send ``unbind`` to every bound session (the SMSC ending the sessions)."""
        for session in self.bound():
            session.send(_pdu("unbind", sequence=next(session.sequence)))
            await session.writer.drain()

    def drop_all(self) -> None:
        """Close every connection at once (no unbind)."""
        for writer in list(self._writers):
            writer.close()

    # --- queries --------------------------------------------------------------

    @property
    def accepted(self) -> list[SubmitRecord]:
        return [s for s in self.submits if s.status == ESME_ROK and s.message_id is not None]

    def bound(self) -> list[BoundSession]:
        return [s for s in self.sessions if not s.unbound and not s.writer.is_closing()]

    async def wait_for(
        self, predicate: Any, *, timeout_s: float = 10.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"fake SMSC: timed out waiting for {what}")
            await asyncio.sleep(0.01)

    # --- mobile-originated and receipts -----------------------------------------

    async def deliver(
        self,
        *,
        source: str,
        destination: str,
        short_message: bytes,
        data_coding: int = 0,
        esm_class: int = 0,
        source_ton: int = 1,
        source_npi: int = 1,
        tlvs: dict[str, Any] | None = None,
        timeout_s: float = 10.0,
    ) -> int:
        """Send one ``deliver_sm`` to a receiving session; the ``deliver_sm_resp`` status."""
        await self.wait_for(
            lambda: any(s.receives for s in self.bound()), what="a receiving session"
        )
        session = next(s for s in self.bound() if s.receives)
        sequence = next(session.sequence)
        data = _pdu(
            "deliver_sm",
            sequence=sequence,
            source_addr=source,
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            destination_addr=destination,
            esm_class=esm_class,
            data_coding=data_coding,
            short_message=short_message,
            **(tlvs or {}),
        )
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        session.waiting[sequence] = future
        session.send(data)
        async with asyncio.timeout(timeout_s):
            return await future

    def receipt_pdu(self, session: BoundSession, record: SubmitRecord) -> bytes:
        stamp = time.strftime("%y%m%d%H%M", time.gmtime())
        faults = self.faults
        delivered = "001" if faults.receipt_stat == "DELIVRD" else "000"
        text = (
            f"id:{record.message_id} sub:001 dlvrd:{delivered}"
            f" submit date:{stamp} done date:{stamp} stat:{faults.receipt_stat}"
            f" err:{faults.receipt_err} text:{record.payload[:20].decode('latin-1')}"
        )
        extra: dict[str, Any] = {}
        if faults.receipt_tlvs:
            states = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6}
            extra = {
                "receipted_message_id": record.message_id,
                "message_state": states.get(faults.receipt_stat, 7),
            }
        return _pdu(
            "deliver_sm",
            sequence=next(session.sequence),
            source_addr=record.destination,
            source_addr_ton=record.dest_ton,
            source_addr_npi=record.dest_npi,
            destination_addr=record.source,
            esm_class=0x04,
            short_message=text.encode("ascii"),
            **extra,
        )

    async def flush_receipts(self, *, reverse: bool = False) -> None:
        held, self.held_receipts = self.held_receipts, []
        for session, data in reversed(held) if reverse else held:
            session.send(data)
            await session.writer.drain()

    # --- the connection ---------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        session: BoundSession | None = None
        try:
            while True:
                head = await reader.readexactly(4)
                (length,) = struct.unpack(">L", head)
                if length < 16 or length > 65536:
                    return
                data = head + await reader.readexactly(length - 4)
                pdu = smpp.parse_pdu(data, client=_CLIENT)
                name = pdu.command
                seq = pdu.sequence
                if name.startswith("bind_"):
                    session = self._bind(pdu, writer)
                    continue
                if name == "enquire_link":
                    self.enquire_links += 1
                    if not self.faults.mute_enquire_link:
                        writer.write(_pdu("enquire_link_resp", sequence=seq))
                elif name == "unbind":
                    self.unbinds += 1
                    if session is not None:
                        session.unbound = True
                    writer.write(_pdu("unbind_resp", sequence=seq))
                    await writer.drain()
                    return
                elif name == "submit_sm":
                    if session is None or session.bind not in _TRANSMITTERS:
                        writer.write(_pdu("generic_nack", sequence=seq, status=0x04))
                        continue
                    if not self._submit(session, pdu):
                        return
                elif name == "deliver_sm_resp":
                    if session is not None:
                        future = session.waiting.pop(seq, None)
                        if future is not None and not future.done():
                            future.set_result(pdu.status)
                elif name == "generic_nack":
                    self.nacks_received.append(pdu.status)
                elif name == "unbind_resp":
                    self.unbind_resps += 1
                    return
                elif name == "enquire_link_resp":
                    pass
                else:
                    writer.write(_pdu("generic_nack", sequence=seq, status=0x03))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if session is not None:
                session.unbound = True
                for future in session.waiting.values():
                    if not future.done():
                        future.cancel()
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)

    def _bind(self, pdu: Any, writer: asyncio.StreamWriter) -> BoundSession | None:
        name = pdu.command
        system_id = _text(pdu.system_id)
        password = _text(pdu.password)
        system_type = _text(pdu.system_type)
        status = self.faults.bind_status
        if not status and (system_id != self.system_id or password != self.password):
            status = ESME_RINVPASWD
        self.binds.append((name, system_id, system_type, status))
        writer.write(_pdu(f"{name}_resp", sequence=pdu.sequence, status=status, system_id="FAKE"))
        if status:
            return None
        session = BoundSession(
            number=next(self._numbers),
            bind=name,
            system_id=system_id,
            password=password,
            system_type=system_type,
            writer=writer,
        )
        self.sessions.append(session)
        return session

    def _submit(self, session: BoundSession, pdu: Any) -> bool:
        """Record and answer one submit_sm; False when the connection is to be dropped."""
        faults = self.faults
        destination = _text(pdu.destination_addr)
        status = ESME_ROK
        nack = False
        if faults.nack:
            faults.nack -= 1
            nack = True
        elif faults.throttle:
            faults.throttle -= 1
            status = ESME_RTHROTTLED
        elif faults.queue_full:
            faults.queue_full -= 1
            status = ESME_RMSGQFUL
        elif faults.syserr:
            faults.syserr -= 1
            status = ESME_RSYSERR
        elif destination in faults.reject:
            status = faults.reject[destination]
        drop = False
        if faults.drop_after is not None:
            if faults.drop_after <= 0:
                drop = True
                faults.drop_after = None
            else:
                faults.drop_after -= 1
        unanswered = drop or faults.silent
        message_id = (
            f"{next(self._ids):X}" if status == ESME_ROK and not nack and not unanswered else None
        )
        record = SubmitRecord(
            session=session.number,
            sequence=pdu.sequence,
            system_id=session.system_id,
            service_type=_text(pdu.service_type),
            source=_text(pdu.source_addr),
            source_ton=int(pdu.source_addr_ton or 0),
            source_npi=int(pdu.source_addr_npi or 0),
            destination=destination,
            dest_ton=int(pdu.dest_addr_ton or 0),
            dest_npi=int(pdu.dest_addr_npi or 0),
            esm_class=int(pdu.esm_class or 0),
            data_coding=int(pdu.data_coding or 0),
            registered_delivery=int(pdu.registered_delivery or 0),
            short_message=bytes(pdu.short_message or b""),
            status=-1 if unanswered else (0x10000 if nack else status),
            message_id=message_id,
            at=time.monotonic(),
        )
        self.submits.append(record)
        if drop:
            session.writer.close()
            return False
        if unanswered:
            return True
        if nack:
            response = _pdu("generic_nack", sequence=pdu.sequence, status=0x03)
        elif status:
            response = _pdu("submit_sm_resp", sequence=pdu.sequence, status=status)
        else:
            response = _pdu("submit_sm_resp", sequence=pdu.sequence, message_id=message_id)
        receipt = b""
        if (
            message_id is not None
            and record.registered_delivery & 0x01
            and faults.receipts != "none"
        ):
            target = (
                session
                if session.receives
                else next(
                    (s for s in self.bound() if s.receives and s.system_id == session.system_id),
                    None,
                )
            )
            if target is not None:
                receipt = self.receipt_pdu(target, record)
                if faults.receipts == "hold":
                    self.held_receipts.append((target, receipt))
                    receipt = b""
                elif faults.receipts == "before" or target is not session:
                    target.send(receipt)
                    receipt = b""
        if faults.delay_s > 0:
            task = asyncio.get_running_loop().create_task(
                self._later(session, faults.delay_s, response + receipt)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            session.send(response + receipt)
        return True

    async def _later(self, session: BoundSession, delay_s: float, data: bytes) -> None:
        await asyncio.sleep(delay_s)
        session.send(data)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.fakes.smsc --port 0 [--receipts after]``: serve until SIGTERM.

    Prints the port on its first line (the benchmark runs the SMSC in its own process).
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--system-id", default="client")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--receipts", default="none", choices=["none", "after", "before"])
    args = parser.parse_args(argv)

    async def serve() -> None:
        smsc = FakeSmsc(system_id=args.system_id, password=args.password)
        smsc.faults.receipts = args.receipts
        await smsc.start(args.port)
        print(smsc.port, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await smsc.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
