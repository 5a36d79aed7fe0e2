"""The SMPP codec, checked against an independent one (smpplib's PDU classes)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smpplib import smpp  # type: ignore[import-untyped]

from mailbridge.core.encoding import GSM7_BASIC, GSM7_EXTENSION, split_text
from mailbridge.models import Format
from mailbridge.providers.events import ReceiptState
from mailbridge.providers.smpp import classify_status, encode_parts, receipt_state
from mailbridge.providers.smpp_codec import (
    Cmd,
    DeliverSm,
    PduReader,
    SmppCodecError,
    Status,
    Tlv,
    bind_body,
    concat_udh,
    data_coding,
    decode_text,
    encode_gsm7,
    encode_pdu,
    parse_concat_udh,
    parse_deliver_sm,
    parse_receipt,
    parse_submit_sm_resp,
    status_name,
    submit_sm_body,
)


class _Seq:
    sequence = 0

    def next_sequence(self) -> int:
        return 0


def theirs(data: bytes) -> Any:
    """smpplib's reading of a PDU."""
    return smpp.parse_pdu(data, client=_Seq())


def their_pdu(name: str, sequence: int = 1, status: int = 0, **fields: Any) -> bytes:
    pdu = smpp.make_pdu(name, client=_Seq(), **fields)
    pdu.sequence = sequence
    pdu.status = status
    data: bytes = pdu.generate()
    return data


def deliver(data: bytes) -> DeliverSm:
    [pdu] = list(PduReader().feed(data))
    assert pdu.command_id == Cmd.DELIVER_SM
    return parse_deliver_sm(pdu.body)


GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=600)


class TestFraming:
    def test_pdus_split_across_reads(self) -> None:
        """PDUs arriving in arbitrary pieces come out whole and in order."""
        stream = encode_pdu(Cmd.ENQUIRE_LINK, 7) + encode_pdu(
            Cmd.SUBMIT_SM_RESP, 8, b"abc\x00", status=0
        )
        reader = PduReader()
        out = []
        for i in range(len(stream)):
            out.extend(reader.feed(stream[i : i + 1]))
        assert [(p.command_id, p.sequence, p.body) for p in out] == [
            (Cmd.ENQUIRE_LINK, 7, b""),
            (Cmd.SUBMIT_SM_RESP, 8, b"abc\x00"),
        ]

    @pytest.mark.parametrize("length", [0, 15, 10**7])
    def test_bad_length_is_refused(self, length: int) -> None:
        """A command_length below the header or beyond the limit is a codec error."""
        head = length.to_bytes(4, "big") + bytes(12)
        with pytest.raises(SmppCodecError):
            list(PduReader().feed(head))


class TestAgainstSmpplib:
    def test_bind(self) -> None:
        """Our bind_transceiver reads back in smpplib with every field."""
        data = encode_pdu(
            Cmd.BIND_TRANSCEIVER,
            3,
            bind_body(system_id="client", password="secret", system_type="ISO"),
        )
        pdu = theirs(data)
        assert pdu.command == "bind_transceiver"
        assert pdu.sequence == 3
        assert (pdu.system_id, pdu.password, pdu.system_type) == (b"client", b"secret", b"ISO")
        assert pdu.interface_version == 0x34

    def test_submit_sm(self) -> None:
        """Our submit_sm reads back in smpplib: addresses, flags, coding, the bytes."""
        message = concat_udh(9, 2, 1) + "Привет".encode("utf-16-be")
        body = submit_sm_body(
            source="Alex",
            source_ton=5,
            source_npi=0,
            destination="79991234567",
            dest_ton=1,
            dest_npi=1,
            short_message=message,
            esm_class=0x40,
            registered_delivery=1,
            data_coding=8,
        )
        pdu = theirs(encode_pdu(Cmd.SUBMIT_SM, 11, body))
        assert pdu.command == "submit_sm"
        assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == (b"Alex", 5, 0)
        assert (pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi) == (
            b"79991234567",
            1,
            1,
        )
        assert (pdu.esm_class, pdu.registered_delivery, pdu.data_coding) == (0x40, 1, 8)
        assert pdu.short_message == message

    def test_submit_sm_resp(self) -> None:
        """smpplib's submit_sm_resp gives us its message_id."""
        [pdu] = list(PduReader().feed(their_pdu("submit_sm_resp", sequence=5, message_id="A1B2")))
        assert (pdu.command_id, pdu.sequence) == (Cmd.SUBMIT_SM_RESP, 5)
        assert parse_submit_sm_resp(pdu.body) == "A1B2"

    def test_deliver_sm_with_tlvs(self) -> None:
        """smpplib's deliver_sm with receipt TLVs is read field by field."""
        got = deliver(
            their_pdu(
                "deliver_sm",
                source_addr="79991234567",
                source_addr_ton=1,
                source_addr_npi=1,
                destination_addr="Alex",
                esm_class=0x04,
                short_message=b"id:77 stat:UNDELIV err:012",
                receipted_message_id="77",
                message_state=5,
            )
        )
        assert got.source == "79991234567"
        assert got.destination == "Alex"
        assert got.is_receipt
        assert got.tlvs[Tlv.MESSAGE_STATE] == b"\x05"
        assert got.tlvs[Tlv.RECEIPTED_MESSAGE_ID] == b"77\x00"


class TestText:
    @given(GSM_TEXT)
    def test_gsm7_round_trip(self, text: str) -> None:
        """GSM text encodes one octet per septet (two for extension characters) and decodes back."""
        data = encode_gsm7(text)
        assert len(data) == len(text) + sum(ch in GSM7_EXTENSION for ch in text)
        assert max(data, default=0) < 0x80
        assert decode_text(data, 0) == text

    def test_gsm7_refuses_other_characters(self) -> None:
        """A character outside the alphabet is a codec error."""
        with pytest.raises(SmppCodecError):
            encode_gsm7("Ж")

    @pytest.mark.parametrize(
        ("alphabet", "scheme", "flash", "expected"),
        [
            ("gsm7", "smsc", False, 0),
            ("latin1", "smsc", False, 4),
            ("ucs2", "smsc", False, 8),
            ("gsm7", "standard", False, 0x00),
            ("latin1", "standard", False, 0x03),
            ("ucs2", "standard", False, 0x08),
            ("gsm7", "smsc", True, 0x10),
            ("latin1", "standard", True, 0x14),
            ("ucs2", "smsc", True, 0x18),
        ],
    )
    def test_data_coding(self, alphabet: str, scheme: str, flash: bool, expected: int) -> None:
        """SMSC's coding * 4, the standard values, and message class 0 for flash."""
        assert data_coding(alphabet, scheme=scheme, flash=flash) == expected

    @pytest.mark.parametrize(
        ("data", "coding", "text"),
        [
            (b"Hello \x1b\x28", 0x00, "Hello {"),
            ("déjà".encode("latin-1"), 0x03, "déjà"),
            ("déjà".encode("latin-1"), 0x04, "déjà"),
            ("Ответ".encode("utf-16-be"), 0x08, "Ответ"),
            ("Ответ".encode("utf-16-be"), 0x18, "Ответ"),
            (b"Hi", 0xF0, "Hi"),
            (b"\xe9", 0xF4, "é"),
            (b"plain", 0x01, "plain"),
        ],
    )
    def test_decode(self, data: bytes, coding: int, text: str) -> None:
        """GSM 7-bit, Latin-1 and UCS-2 decode under each data_coding that names them."""
        assert decode_text(data, coding) == text

    def test_default_alphabet_as_latin1(self) -> None:
        """With system_type ISO, data_coding 0 is Latin-1."""
        assert decode_text("é".encode("latin-1"), 0, default_latin1=True) == "é"

    def test_unknown_coding(self) -> None:
        """A data_coding that is not text is a codec error."""
        with pytest.raises(SmppCodecError):
            decode_text(b"x", 0x40 | 0x04 | 0x80)


class TestUdh:
    def test_eight_bit_reference(self) -> None:
        """The UDH we write reads back with the text after it."""
        assert parse_concat_udh(concat_udh(300, 3, 2) + b"abc") == ((300 & 0xFF, 3, 2), b"abc")

    def test_sixteen_bit_reference(self) -> None:
        """IEI 0x08 (16-bit reference) is read too."""
        udh = bytes((0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01))
        assert parse_concat_udh(udh + b"x") == ((0x1234, 2, 1), b"x")

    def test_other_elements_skipped(self) -> None:
        """A UDH without concatenation gives no reference and the text after it."""
        udh = bytes((0x04, 0x05, 0x02, 0x0B, 0x84))  # port addressing
        assert parse_concat_udh(udh + b"x") == (None, b"x")

    @pytest.mark.parametrize("data", [b"", b"\x09\x00\x03", b"\x05\x00\x05\x01"])
    def test_broken(self, data: bytes) -> None:
        """A UDH longer than its message is a codec error."""
        with pytest.raises(SmppCodecError):
            parse_concat_udh(data)


def receipt_pdu(text: bytes, **tlvs: Any) -> DeliverSm:
    return deliver(
        their_pdu(
            "deliver_sm",
            source_addr="79991234567",
            destination_addr="Alex",
            esm_class=0x04,
            short_message=text,
            **tlvs,
        )
    )


class TestReceipts:
    def test_text_only(self) -> None:
        """The id/stat/err/done date text gives every field."""
        got = parse_receipt(
            receipt_pdu(
                b"id:0A1B sub:001 dlvrd:000 submit date:2612021200 done date:2612021305"
                b" stat:EXPIRED err:045 text:hello"
            )
        )
        assert got.message_id == "0A1B"
        assert got.status == "EXPIRED"
        assert got.error_code == "045"
        assert got.done == datetime(2026, 12, 2, 13, 5, tzinfo=UTC)

    def test_tlvs_win(self) -> None:
        """receipted_message_id and message_state override the text."""
        got = parse_receipt(
            receipt_pdu(b"id:999 stat:DELIVRD err:000", receipted_message_id="ABC", message_state=8)
        )
        assert (got.message_id, got.status) == ("ABC", "REJECTD")

    def test_tlvs_without_text(self) -> None:
        """A receipt of TLVs alone is read; network_error_code gives the error."""
        got = parse_receipt(
            receipt_pdu(
                b"",
                receipted_message_id="X9",
                message_state=5,
                network_error_code=b"\x03\x00\x0b",
            )
        )
        assert (got.message_id, got.status, got.error_code, got.done) == (
            "X9",
            "UNDELIV",
            "11",
            None,
        )

    def test_no_id(self) -> None:
        """A receipt with no id is a codec error (the provider logs and acknowledges it)."""
        with pytest.raises(SmppCodecError):
            parse_receipt(receipt_pdu(b"stat:DELIVRD"))

    @pytest.mark.parametrize(
        ("word", "state"),
        [
            ("DELIVRD", ReceiptState.DELIVERED),
            ("UNDELIV", ReceiptState.FAILED),
            ("REJECTD", ReceiptState.FAILED),
            ("DELETED", ReceiptState.FAILED),
            ("EXPIRED", ReceiptState.EXPIRED),
            ("ENROUTE", ReceiptState.PENDING),
            ("ACCEPTD", ReceiptState.PENDING),
            ("UNKNOWN", ReceiptState.PENDING),
        ],
    )
    def test_states(self, word: str, state: ReceiptState) -> None:
        """Each stat word maps to SPEC §4's states; interim ones are pending."""
        assert receipt_state(word) == state


class TestStatuses:
    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (Status.ROK, "ok"),
            (Status.RTHROTTLED, "slow"),
            (Status.RMSGQFUL, "slow"),
            (Status.RSYSERR, "slow"),
            (Status.RINVDSTADR, "permanent"),
            (Status.RINVSRCADR, "permanent"),
            (Status.RINVMSGLEN, "permanent"),
            (Status.RINVDCS, "permanent"),
            (Status.RINVDSTTON, "permanent"),
            (Status.RSUBMITFAIL, "temporary"),
            (0x4242, "temporary"),
        ],
    )
    def test_classes(self, status: int, kind: str) -> None:
        """Throttling/queue full/system error slow down; invalid address/length/coding fail."""
        assert classify_status(status) == kind

    def test_names(self) -> None:
        """Statuses are named for logs; unknown ones by number."""
        assert status_name(0x58) == "ESME_RTHROTTLED (0x58)"
        assert status_name(0x4242) == "status 0x4242"


class TestParts:
    @given(st.text(max_size=700))
    def test_parts_follow_the_core(self, text: str) -> None:
        """As many submits as the core counts parts; each decodes back to its part; UDH iff many."""
        parts = encode_parts(text, Format.SMS, scheme="smsc", iso=False, reference=7)
        split = split_text(text)
        assert len(parts) == split.count
        for i, (part, expected) in enumerate(zip(parts, split.parts, strict=True)):
            message = part.short_message
            if len(parts) > 1:
                assert part.esm_class == 0x40
                found, message = parse_concat_udh(message)
                assert found == (7, len(parts), i + 1)
            else:
                assert part.esm_class == 0
            assert len(part.short_message) <= 254
            assert decode_text(message, part.data_coding) == expected

    def test_iso_sends_latin1(self) -> None:
        """system_type ISO: GSM-fitting Latin-1 text goes as ISO-8859-1 (coding 1)."""
        [part] = encode_parts("Café {x}", Format.SMS, scheme="smsc", iso=True, reference=1)
        assert (part.short_message, part.data_coding) == ("Café {x}".encode("latin-1"), 4)

    def test_iso_keeps_gsm_for_greek(self) -> None:
        """A GSM character that Latin-1 lacks keeps the text in GSM 7-bit."""
        [part] = encode_parts("ΔΦ €", Format.SMS, scheme="standard", iso=True, reference=1)
        assert part.data_coding == 0
        assert decode_text(part.short_message, 0) == "ΔΦ €"

    def test_flash(self) -> None:
        """Flash is message class 0 (0x10 GSM, 0x18 UCS-2)."""
        [gsm] = encode_parts("hi", Format.FLASH, scheme="smsc", iso=False, reference=1)
        [ucs] = encode_parts("привет", Format.FLASH, scheme="smsc", iso=False, reference=1)
        assert (gsm.data_coding, ucs.data_coding) == (0x10, 0x18)


@given(st.binary(max_size=300))
def test_any_deliver_body_reads_or_raises_codec_error(data: bytes) -> None:
    """Any body is either a deliver_sm or an SmppCodecError, never another exception."""
    with contextlib.suppress(SmppCodecError):
        parse_deliver_sm(data)
