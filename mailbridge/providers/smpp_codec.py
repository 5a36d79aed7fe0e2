"""SMPP 3.4 on the wire, without I/O: PDU framing, the PDUs an ESME uses, text and receipts.

Bytes in, values out (like h11): :class:`PduReader` cuts a byte stream into
:class:`Pdu` values; the ``*_body`` builders and ``parse_*`` readers handle
the bodies the gateway sends and reads. Anything malformed raises
:class:`SmppCodecError` (a ``ValueError``), never anything else.

Text (``seeds/smsc-smpp-submit.txt``): GSM 7-bit travels unpacked, one octet
per septet with the 0x1B escape (the SMPP convention for ``data_coding`` 0);
ISO-8859-1 and UCS-2 (UTF-16BE) as their bytes. :func:`data_coding` gives the
value for each: SMSC's ``coding * 4`` (0, 4, 8) or the standard SMPP values
(0x00, 0x03, 0x08); a flash SMS (format 1) sets message class 0 in the
GSM 03.38 general data coding group (0x10, 0x14, 0x18).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "GSM7_DECODE",
    "Cmd",
    "DeliverSm",
    "Pdu",
    "PduReader",
    "ReceiptFields",
    "SmppCodecError",
    "Status",
    "Tlv",
    "bind_body",
    "concat_udh",
    "data_coding",
    "decode_text",
    "encode_gsm7",
    "encode_pdu",
    "parse_bind_resp",
    "parse_concat_udh",
    "parse_deliver_sm",
    "parse_receipt",
    "parse_submit_sm_resp",
    "status_name",
    "submit_sm_body",
]

#: Largest PDU accepted from the peer (SMPP 3.4 has no limit; 64 KiB is generous).
MAX_PDU = 65536


class SmppCodecError(ValueError):
    """Bytes that are not the SMPP this codec reads."""


class Cmd(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


class Status(enum.IntEnum):
    """The ``command_status`` values the gateway tells apart (SMPP 3.4 §5.1.3, 5.0 for DCS)."""

    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RINVMSGID = 0x0C
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RMSGQFUL = 0x14
    RINVSERTYP = 0x15
    RINVESMCLASS = 0x43
    RSUBMITFAIL = 0x45
    RINVSRCTON = 0x48
    RINVSRCNPI = 0x49
    RINVDSTTON = 0x50
    RINVDSTNPI = 0x51
    RINVSYSTYP = 0x53
    RTHROTTLED = 0x58
    RINVSCHED = 0x61
    RINVEXPIRY = 0x62
    RX_T_APPN = 0x64
    RX_P_APPN = 0x65
    RX_R_APPN = 0x66
    RINVOPTPARSTREAM = 0xC0
    ROPTPARNOTALLWD = 0xC1
    RINVPARLEN = 0xC2
    RUNKNOWNERR = 0xFF
    RINVDCS = 0x104


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED (0x58)``: a status as logs and answers show it."""
    try:
        return f"ESME_{Status(status).name} (0x{status:02X})"
    except ValueError:
        return f"status 0x{status:02X}"


class Tlv(enum.IntEnum):
    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


@dataclass(frozen=True, slots=True)
class Pdu:
    command_id: int
    status: int
    sequence: int
    body: bytes = b""


def encode_pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


class PduReader:
    """Cuts a byte stream into PDUs: ``feed`` bytes, iterate what is complete."""

    def __init__(self, max_pdu: int = MAX_PDU) -> None:
        self._buffer = bytearray()
        self._max = max_pdu

    def feed(self, data: bytes) -> Iterator[Pdu]:
        self._buffer += data
        buffer = self._buffer
        while len(buffer) >= 16:
            length, command_id, status, sequence = struct.unpack_from(">IIII", buffer)
            if length < 16 or length > self._max:
                raise SmppCodecError(f"PDU length {length} out of range")
            if len(buffer) < length:
                return
            body = bytes(buffer[16:length])
            del buffer[:length]
            yield Pdu(command_id, status, sequence, body)


# --- body fields --------------------------------------------------------------


def _cstr(value: str, limit: int, what: str) -> bytes:
    data = value.encode("latin-1", "replace")
    if len(data) >= limit:
        raise SmppCodecError(f"{what} longer than {limit - 1} octets")
    return data + b"\x00"


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def cstr(self, limit: int) -> str:
        end = self.data.find(b"\x00", self.at, self.at + limit)
        if end < 0:
            raise SmppCodecError("unterminated C-octet string")
        value = self.data[self.at : end].decode("latin-1")
        self.at = end + 1
        return value

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise SmppCodecError("body too short")
        value = self.data[self.at]
        self.at += 1
        return value

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise SmppCodecError("body too short")
        value = self.data[self.at : self.at + n]
        self.at += n
        return value

    def tlvs(self) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        while self.at < len(self.data):
            if self.at + 4 > len(self.data):
                raise SmppCodecError("truncated TLV")
            tag, length = struct.unpack_from(">HH", self.data, self.at)
            self.at += 4
            found[tag] = self.take(length)
        return found


def bind_body(
    *,
    system_id: str,
    password: str,
    system_type: str,
    addr_ton: int = 0,
    addr_npi: int = 0,
    address_range: str = "",
) -> bytes:
    return (
        _cstr(system_id, 16, "system_id")
        + _cstr(password, 9, "password")
        + _cstr(system_type, 13, "system_type")
        + bytes((0x34, addr_ton & 0xFF, addr_npi & 0xFF))
        + _cstr(address_range, 41, "address_range")
    )


def parse_bind_resp(body: bytes) -> str:
    """The SMSC's ``system_id`` ("" when the body is empty, as on a refusal)."""
    return _Cursor(body).cstr(16) if body else ""


def submit_sm_body(
    *,
    source: str,
    source_ton: int,
    source_npi: int,
    destination: str,
    dest_ton: int,
    dest_npi: int,
    short_message: bytes,
    esm_class: int = 0,
    registered_delivery: int = 0,
    data_coding: int = 0,
    service_type: str = "",
) -> bytes:
    if len(short_message) > 254:
        raise SmppCodecError("short_message longer than 254 octets")
    return b"".join(
        (
            _cstr(service_type, 6, "service_type"),
            bytes((source_ton & 0xFF, source_npi & 0xFF)),
            _cstr(source, 21, "source_addr"),
            bytes((dest_ton & 0xFF, dest_npi & 0xFF)),
            _cstr(destination, 21, "destination_addr"),
            bytes((esm_class, 0, 0)),  # esm_class, protocol_id, priority_flag
            b"\x00\x00",  # schedule_delivery_time, validity_period: SMSC defaults
            bytes((registered_delivery, 0, data_coding, 0, len(short_message))),
            short_message,
        )
    )


def parse_submit_sm_resp(body: bytes) -> str:
    return _Cursor(body).cstr(65) if body else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm:
    service_type: str
    source_ton: int
    source_npi: int
    source: str
    dest_ton: int
    dest_npi: int
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @property
    def is_receipt(self) -> bool:
        """SMSC delivery receipt (bits 2-5 of ``esm_class`` = 0001) or intermediate notification."""
        kind = self.esm_class & 0x3C
        return kind in (0x04, 0x20) or (kind == 0 and Tlv.RECEIPTED_MESSAGE_ID in self.tlvs)

    @property
    def message(self) -> bytes:
        """The user data: ``message_payload`` when ``short_message`` is empty."""
        if not self.short_message and Tlv.MESSAGE_PAYLOAD in self.tlvs:
            return self.tlvs[Tlv.MESSAGE_PAYLOAD]
        return self.short_message


def parse_deliver_sm(body: bytes) -> DeliverSm:
    c = _Cursor(body)
    service_type = c.cstr(6)
    source_ton, source_npi = c.byte(), c.byte()
    source = c.cstr(21)
    dest_ton, dest_npi = c.byte(), c.byte()
    destination = c.cstr(21)
    esm_class = c.byte()
    c.byte()  # protocol_id
    c.byte()  # priority_flag
    c.cstr(17)  # schedule_delivery_time
    c.cstr(17)  # validity_period
    c.byte()  # registered_delivery
    c.byte()  # replace_if_present_flag
    coding = c.byte()
    c.byte()  # sm_default_msg_id
    short_message = c.take(c.byte())
    return DeliverSm(
        service_type=service_type,
        source_ton=source_ton,
        source_npi=source_npi,
        source=source,
        dest_ton=dest_ton,
        dest_npi=dest_npi,
        destination=destination,
        esm_class=esm_class,
        data_coding=coding,
        short_message=short_message,
        tlvs=c.tlvs(),
    )


# --- text -----------------------------------------------------------------------

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
            "]": 0x3E, "|": 0x40, "€": 0x65}  # fmt: skip
_GSM_ENCODE: dict[str, bytes] = {ch: bytes((i,)) for i, ch in enumerate(_GSM_BASIC) if i != 0x1B}
_GSM_ENCODE.update({ch: bytes((0x1B, code)) for ch, code in _GSM_EXT.items()})
#: Septet → character of the default alphabet.
GSM7_DECODE: dict[int, str] = dict(enumerate(_GSM_BASIC))
_GSM_EXT_DECODE = {code: ch for ch, code in _GSM_EXT.items()}


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM 7-bit: one octet per septet, extension characters escaped."""
    try:
        return b"".join(_GSM_ENCODE[ch] for ch in text)
    except KeyError as exc:
        raise SmppCodecError(f"{exc.args[0]!r} is not in the GSM 7-bit alphabet") from None


def _decode_gsm7(data: bytes) -> str:
    out: list[str] = []
    escape = False
    for octet in data:
        septet = octet & 0x7F
        if escape:
            out.append(_GSM_EXT_DECODE.get(septet, GSM7_DECODE.get(septet, "?")))
            escape = False
        elif septet == 0x1B:
            escape = True
        else:
            out.append(GSM7_DECODE[septet])
    return "".join(out)


def data_coding(alphabet: str, *, scheme: str, flash: bool = False) -> int:
    """``data_coding`` for ``gsm7``, ``latin1`` or ``ucs2`` under ``smsc`` or ``standard``."""
    coding = {"gsm7": 0, "latin1": 1, "ucs2": 2}[alphabet]
    if flash:
        return 0x10 | coding << 2  # general group, message class 0
    if scheme == "standard":
        return (0x00, 0x03, 0x08)[coding]
    return coding * 4


def decode_text(data: bytes, coding: int, *, default_latin1: bool = False) -> str:
    """Text of a ``short_message`` under ``data_coding`` (undecodable octets become U+FFFD)."""
    if coding == 0x00:
        return data.decode("latin-1") if default_latin1 else _decode_gsm7(data)
    if coding == 0x01:
        return data.decode("ascii", "replace")
    if coding in (0x03, 0x06):  # Latin-1; 0x06 Cyrillic (ISO-8859-5)
        return data.decode("latin-1" if coding == 0x03 else "iso-8859-5")
    if coding & 0xF0 == 0xF0:
        return data.decode("latin-1") if coding & 0x04 else _decode_gsm7(data)
    if coding & 0xC0 == 0x00:  # GSM 03.38 general group, uncompressed
        alphabet = (coding >> 2) & 0x03
        if alphabet == 0:
            return _decode_gsm7(data)
        if alphabet == 1:
            return data.decode("latin-1")
        if alphabet == 2:
            return data[: len(data) & ~1].decode("utf-16-be", "replace")
    raise SmppCodecError(f"data_coding 0x{coding:02X} is not text this gateway reads")


def concat_udh(reference: int, total: int, sequence: int) -> bytes:
    """The 8-bit-reference concatenation UDH (IEI 0x00) of one part."""
    return bytes((0x05, 0x00, 0x03, reference & 0xFF, total, sequence))


def parse_concat_udh(message: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """((reference, total, sequence) or None, the text after the UDH) of a UDHI message."""
    if not message:
        raise SmppCodecError("empty message with a UDH indicator")
    end = 1 + message[0]
    if end > len(message):
        raise SmppCodecError("UDH longer than the message")
    udh, rest = message[1:end], message[end:]
    found: tuple[int, int, int] | None = None
    while len(udh) >= 2:
        iei, length = udh[0], udh[1]
        value = udh[2 : 2 + length]
        if len(value) != length:
            raise SmppCodecError("truncated UDH element")
        if iei == 0x00 and length == 3:
            found = (value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            found = ((value[0] << 8) | value[1], value[2], value[3])
        udh = udh[2 + length :]
    return found, rest


# --- delivery receipts --------------------------------------------------------------

#: ``message_state`` TLV values and the receipt text's ``stat`` word for each.
_STATE_WORDS = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}  # fmt: skip

_FIELDS = {
    key: re.compile(pattern, re.IGNORECASE)
    for key, pattern in {
        "id": r"\bid:(\S+)",
        "stat": r"\bstat:(\w+)",
        "err": r"\berr:(\w+)",
        "done": r"\bdone[ _]date:(\d{10,12})",
    }.items()
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptFields:
    message_id: str
    status: str
    error_code: str | None
    done: datetime | None


def _receipt_time(stamp: str) -> datetime | None:
    try:
        when = datetime.strptime(stamp[:10], "%y%m%d%H%M").replace(tzinfo=UTC)
        if len(stamp) >= 12:
            when = when.replace(second=min(59, int(stamp[10:12])))
    except ValueError:
        return None
    return when


def parse_receipt(deliver: DeliverSm) -> ReceiptFields:
    """What a receipt says: the TLVs (``receipted_message_id``, ``message_state``,
    ``network_error_code``) where present, else the ``id:… stat:… err:… done date:…`` text."""
    text = deliver.message.decode("latin-1")
    found = {key: (m.group(1) if (m := rx.search(text)) else None) for key, rx in _FIELDS.items()}
    message_id = found["id"]
    raw_id = deliver.tlvs.get(Tlv.RECEIPTED_MESSAGE_ID)
    if raw_id is not None:
        message_id = raw_id.split(b"\x00", 1)[0].decode("latin-1")
    if not message_id:
        raise SmppCodecError("receipt without a message id")
    status = (found["stat"] or "").upper()
    raw_state = deliver.tlvs.get(Tlv.MESSAGE_STATE)
    if raw_state:
        status = _STATE_WORDS.get(raw_state[0], status or "UNKNOWN")
    error = found["err"]
    raw_error = deliver.tlvs.get(Tlv.NETWORK_ERROR_CODE)
    if error is None and raw_error is not None and len(raw_error) == 3:
        error = str(int.from_bytes(raw_error[1:], "big"))
    return ReceiptFields(
        message_id=message_id,
        status=status or "UNKNOWN",
        error_code=error,
        done=_receipt_time(found["done"]) if found["done"] else None,
    )
