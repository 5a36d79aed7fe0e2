"""The ``smpp`` provider: SMPP 3.4 ``submit_sm`` out, ``deliver_sm`` (receipts, MO) in.

Sessions (:mod:`mailbridge.providers.smpp_session`): ``connections``
transmitting ones (bound as transceivers, or as transmitters beside one
receiver with ``bind = "transmitter+receiver"``), connected when the provider
is built inside a running event loop, else at the first send.

Sending one SMS (``max_batch`` 1): the text is cut as the core counts parts
(:func:`mailbridge.core.encoding.split_text`); each part is one ``submit_sm``
on the same connection, written back to back inside the window (so all parts
reach the SMSC within its minute), a multi-part text with an 8-bit
concatenation UDH (``esm_class`` 0x40). Alphabet and ``data_coding``:
:func:`encode_parts`. The result is :class:`Sent` with the ``message_id`` the
SMSC returned (for several parts, their ids joined by ``,`` in part order).

Answers (:func:`classify_status`):

=====================================================  ================================
``submit_sm_resp`` status                              outcome
=====================================================  ================================
``ESME_ROK``                                           sent
``ESME_RTHROTTLED``, ``ESME_RMSGQFUL``, ``ESME_RSYSERR``  temporary; the session pauses
``ESME_RINVMSGLEN``, invalid source/destination         this SMS fails (permanent)
address, TON or NPI, ``esm_class``, data coding,
optional parameters, ``ESME_RX_P_APPN``, ``ESME_RX_R_APPN``
``generic_nack``, any other status                     temporary
=====================================================  ================================

No connection bound: a refused bind raises :class:`ProviderUnavailableError`
(a provider fault: the breaker opens, the SMS wait or fail over); otherwise,
after waiting ``connect_timeout_s`` for a bind, :class:`TemporaryProviderError`.
A connection lost before a ``submit_sm_resp`` raises temporary: the SMS goes
again after reconnect (at-least-once; the SMSC may then have it twice).

``deliver_sm``: a receipt (``esm_class`` receipt bits, or a
``receipted_message_id``) becomes a :class:`Receipt`, anything else an
:class:`InboundSms` (one per part, :class:`Concat` from the UDH or the SAR
TLVs); it is handed to the :class:`ProviderEvents` sink and answered
``ESME_ROK`` only after the sink returned (stored). A sink that fails gets
``ESME_RX_T_APPN`` (the SMSC delivers it again); a PDU that cannot be read
gets ``ESME_RX_P_APPN``; a receipt without a message id is acknowledged and
logged.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailbridge.core.encoding import split_text
from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.log import get_logger
from mailbridge.models import Encoding, Format
from mailbridge.providers.base import Outbound, SendResult, Sent, classify_code, send_each
from mailbridge.providers.events import (
    Concat,
    InboundSms,
    ProviderEvents,
    Receipt,
    ReceiptState,
)
from mailbridge.providers.smpp_codec import (
    Cmd,
    DeliverSm,
    Pdu,
    SmppCodecError,
    Status,
    Tlv,
    concat_udh,
    data_coding,
    decode_text,
    encode_gsm7,
    parse_concat_udh,
    parse_deliver_sm,
    parse_receipt,
    parse_submit_sm_resp,
    status_name,
    submit_sm_body,
)
from mailbridge.providers.smpp_session import ConnectionLost, SmppSession
from mailbridge.settings import ProviderSettings, SmppSettings

__all__ = [
    "SMPP_FORMATS",
    "Part",
    "SmppProvider",
    "classify_status",
    "encode_parts",
    "receipt_state",
]

SMPP_FORMATS: frozenset[Format] = frozenset({Format.SMS, Format.FLASH})

_SLOW = frozenset({Status.RTHROTTLED, Status.RMSGQFUL, Status.RSYSERR})
_PERMANENT = frozenset(
    {
        Status.RINVMSGLEN,
        Status.RINVSRCADR,
        Status.RINVDSTADR,
        Status.RINVESMCLASS,
        Status.RINVSRCTON,
        Status.RINVSRCNPI,
        Status.RINVDSTTON,
        Status.RINVDSTNPI,
        Status.RINVDCS,
        Status.RINVSERTYP,
        Status.RINVOPTPARSTREAM,
        Status.ROPTPARNOTALLWD,
        Status.RINVPARLEN,
        Status.RX_P_APPN,
        Status.RX_R_APPN,
    }
)
_STATUSES = (("ok", frozenset({Status.ROK})), ("slow", _SLOW), ("permanent", _PERMANENT))
_STATES = {
    "DELIVRD": ReceiptState.DELIVERED,
    "UNDELIV": ReceiptState.FAILED,
    "REJECTD": ReceiptState.FAILED,
    "DELETED": ReceiptState.FAILED,
    "EXPIRED": ReceiptState.EXPIRED,
}


def classify_status(status: int) -> str:
    """``"ok"``, ``"slow"`` (temporary, pause the session), ``"permanent"`` or ``"temporary"``."""
    return classify_code(status, _STATUSES)


def receipt_state(word: str) -> ReceiptState:
    """The state a receipt's ``stat`` word means (``ENROUTE``, ``ACCEPTD``, … are pending)."""
    return _STATES.get(word.upper(), ReceiptState.PENDING)


@dataclass(frozen=True, slots=True)
class Part:
    short_message: bytes
    esm_class: int
    data_coding: int


def encode_parts(text: str, fmt: Format, *, scheme: str, iso: bool, reference: int) -> list[Part]:
    """The ``submit_sm`` payloads of one SMS, split as the core counts parts.

    GSM text goes as unpacked GSM 7-bit, or as ISO-8859-1 when ``iso``
    (``system_type = "ISO"``) and every character is Latin-1; other text as
    UCS-2. Flash (format 1) is message class 0.
    """
    split = split_text(text, fmt)
    if split.encoding == Encoding.GSM7:
        if iso and all(ch <= "\xff" for ch in text):
            alphabet, payloads = "latin1", [p.encode("latin-1") for p in split.parts]
        else:
            alphabet, payloads = "gsm7", [encode_gsm7(p) for p in split.parts]
    else:
        alphabet = "ucs2"
        payloads = [p.encode("utf-16-be", "surrogatepass") for p in split.parts]
    coding = data_coding(alphabet, scheme=scheme, flash=fmt == Format.FLASH)
    if len(payloads) == 1:
        return [Part(payloads[0], 0, coding)]
    total = len(payloads)
    return [
        Part(concat_udh(reference, total, i + 1) + payload, 0x40, coding)
        for i, payload in enumerate(payloads)
    ]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SmppProvider:
    """An SMPP 3.4 ESME; see the module docstring."""

    max_batch = 1

    def __init__(
        self,
        settings: ProviderSettings,
        events: ProviderEvents | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if settings.smpp is None:
            raise ValueError(f"{settings.name}: no smpp settings")
        self.name = settings.name
        self.settings = settings
        self.formats = SMPP_FORMATS & (settings.formats or SMPP_FORMATS)
        self._smpp: SmppSettings = settings.smpp
        self._events = events
        self._clock = clock
        self._connect_timeout_s = settings.connect_timeout_s
        self._timeout_s = settings.timeout_s
        self._log = get_logger("mailbridge.smpp").bind(provider=self.name)
        self._references = itertools.count(random.randrange(256))  # a new range after a restart
        self._turn = itertools.count()
        split = self._smpp.bind == "transmitter+receiver"

        def session(bind: Cmd, *, receives: bool) -> SmppSession:
            return SmppSession(
                provider=self.name,
                settings=self._smpp,
                password=settings.password,
                bind=bind,
                timeout_s=settings.timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
                on_deliver=self._on_deliver if receives else None,
            )

        self.transmitters = [
            session(Cmd.BIND_TRANSMITTER if split else Cmd.BIND_TRANSCEIVER, receives=not split)
            for _ in range(self._smpp.connections)
        ]
        self.receiver = session(Cmd.BIND_RECEIVER, receives=True) if split else None
        self._started = False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.start()

    @property
    def sessions(self) -> list[SmppSession]:
        return self.transmitters + ([self.receiver] if self.receiver is not None else [])

    def start(self) -> None:
        """Connect every session (in the running loop); idempotent."""
        if not self._started:
            self._started = True
            for session in self.sessions:
                session.start()

    async def aclose(self) -> None:
        """Let the windows drain (at most ``timeout_s``), unbind, disconnect."""
        await asyncio.gather(*(s.close(self._timeout_s) for s in self.sessions))

    # --- sending ----------------------------------------------------------------------

    async def _session(self) -> SmppSession:
        """A bound transmitting session, the least busy; waits ``connect_timeout_s`` for one."""
        self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout_s
        while True:
            bound = [s for s in self.transmitters if s.bound]
            if bound:
                start = next(self._turn) % len(bound)
                ordered = bound[start:] + bound[:start]
                return min(ordered, key=lambda s: s.in_flight)
            refused = [s.refused for s in self.transmitters if s.refused is not None]
            if refused:
                raise ProviderUnavailableError(
                    f"{self.name}: SMPP bind refused ({status_name(refused[0])}):"
                    " check system_id, password and system_type"
                )
            left = deadline - loop.time()
            if left <= 0:
                raise TemporaryProviderError(f"{self.name}: not connected to the SMSC")
            await self.transmitters[0].wait_change(min(left, 0.5))

    def _addresses(self, item: Outbound) -> tuple[str, int, int, str]:
        s = self._smpp
        sender = item.sender
        digits = sender.removeprefix("+")
        if not sender:
            ton, npi = 0, 0
        elif digits.isdigit():
            ton, npi, sender = 1, 1, digits
        else:
            ton, npi = 5, 0
        ton = s.source_ton if s.source_ton is not None else ton
        npi = s.source_npi if s.source_npi is not None else npi
        return sender, ton, npi, item.recipient.removeprefix("+")

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        return await send_each(self, batch, self._send_one)

    async def _send_one(self, item: Outbound) -> SendResult:
        s = self._smpp
        try:
            parts = encode_parts(
                item.text,
                item.format,
                scheme=s.data_coding,
                iso=s.system_type.upper() == "ISO",
                reference=next(self._references) & 0xFF,
            )
        except (SmppCodecError, ValueError) as exc:
            return PermanentProviderError(f"{self.name}: cannot encode the text ({exc})")
        source, ton, npi, destination = self._addresses(item)
        bodies = [
            submit_sm_body(
                source=source,
                source_ton=ton,
                source_npi=npi,
                destination=destination,
                dest_ton=s.dest_ton,
                dest_npi=s.dest_npi,
                short_message=part.short_message,
                esm_class=part.esm_class,
                registered_delivery=1 if s.registered_delivery else 0,
                data_coding=part.data_coding,
            )
            for part in parts
        ]
        session = await self._session()
        answers: list[Pdu | BaseException]
        if len(bodies) == 1:  # the common case: no task for a gather
            try:
                answers = [await session.submit(bodies[0])]
            except (ConnectionLost, TimeoutError) as exc:
                answers = [exc]
        else:
            answers = await asyncio.gather(
                *(session.submit(body) for body in bodies), return_exceptions=True
            )
        return self._result(session, answers)

    def _result(self, session: SmppSession, answers: list[Pdu | BaseException]) -> SendResult:
        ids: list[str] = []
        worst: SendResult | None = None
        for answer in answers:
            if isinstance(answer, ConnectionLost):
                raise TemporaryProviderError(
                    f"{self.name}: connection lost before submit_sm_resp"
                ) from answer
            if isinstance(answer, TimeoutError):
                worst = TemporaryProviderError(
                    f"{self.name}: no submit_sm_resp within {self._timeout_s:g} s"
                )
                continue
            if isinstance(answer, BaseException):
                raise answer
            if answer.command_id == Cmd.GENERIC_NACK:
                self._log.warning("smpp generic_nack", status=status_name(answer.status))
                worst = worst or TemporaryProviderError(
                    f"{self.name}: generic_nack ({status_name(answer.status)})"
                )
                continue
            kind = classify_status(answer.status)
            if kind == "ok":
                ids.append(parse_submit_sm_resp(answer.body))
            elif kind == "permanent":
                worst = PermanentProviderError(
                    f"{self.name}: rejected ({status_name(answer.status)})",
                    provider_answer=status_name(answer.status),
                )
            elif not isinstance(worst, PermanentProviderError):
                pause = session.slow_down() if kind == "slow" else None
                worst = TemporaryProviderError(
                    f"{self.name}: {status_name(answer.status)}",
                    provider_answer=status_name(answer.status),
                    retry_after_s=max(1.0, pause) if pause is not None else None,
                )
        if worst is not None:
            return worst
        joined = ",".join(ids)
        return Sent(provider_id=joined, answer=f"message_id {joined}", parts=len(ids))

    # --- receiving ----------------------------------------------------------------------

    async def _on_deliver(self, pdu: Pdu) -> int:
        try:
            deliver = parse_deliver_sm(pdu.body)
        except SmppCodecError as exc:
            self._log.warning("smpp deliver_sm unreadable", error=str(exc))
            return Status.RX_P_APPN
        if self._events is None:
            self._log.warning("smpp deliver_sm not stored: no sink for receipts and inbound SMS")
            return Status.RX_T_APPN
        try:
            if deliver.is_receipt:
                receipt = self._receipt(deliver)
                if receipt is None:
                    return Status.ROK
                await self._events.receipt(receipt)
            else:
                inbound = self._inbound(deliver)
                if inbound is None:
                    return Status.RX_P_APPN
                await self._events.inbound(inbound)
        except Exception:
            self._log.exception("smpp deliver_sm could not be stored")
            return Status.RX_T_APPN
        return Status.ROK

    def _receipt(self, deliver: DeliverSm) -> Receipt | None:
        try:
            fields = parse_receipt(deliver)
        except SmppCodecError as exc:
            self._log.warning("smpp receipt unreadable", error=str(exc))
            return None
        return Receipt(
            provider=self.name,
            message_id=fields.message_id,
            state=receipt_state(fields.status),
            status=fields.status,
            error_code=fields.error_code,
            at=fields.done or self._clock(),
        )

    def _inbound(self, deliver: DeliverSm) -> InboundSms | None:
        message = deliver.message
        concat: Concat | None = None
        try:
            if deliver.esm_class & 0x40:
                found, message = parse_concat_udh(message)
                if found is not None:
                    concat = Concat(reference=found[0], total=found[1], sequence=found[2])
            tlvs = deliver.tlvs
            if concat is None and Tlv.SAR_MSG_REF_NUM in tlvs:
                concat = Concat(
                    reference=int.from_bytes(tlvs[Tlv.SAR_MSG_REF_NUM], "big"),
                    total=int.from_bytes(tlvs.get(Tlv.SAR_TOTAL_SEGMENTS, b"\x01"), "big"),
                    sequence=int.from_bytes(tlvs.get(Tlv.SAR_SEGMENT_SEQNUM, b"\x01"), "big"),
                )
            text = decode_text(
                message, deliver.data_coding, default_latin1=self._smpp.system_type.upper() == "ISO"
            )
        except SmppCodecError as exc:
            self._log.warning("smpp inbound SMS unreadable", error=str(exc))
            return None
        source = deliver.source
        if deliver.source_ton == 1 and source.isdigit():
            source = "+" + source
        return InboundSms(
            provider=self.name,
            source=source,
            destination=deliver.destination,
            text=text,
            received_at=self._clock(),
            concat=concat,
        )
