"""The smpp provider against the fake SMSC (smpplib's codec) on loopback, fault by fault."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mailbridge.core.config import parse_config
from mailbridge.core.encoding import split_text
from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format
from mailbridge.providers.base import Outbound, Sent
from mailbridge.providers.events import InboundSms, Receipt, ReceiptState
from mailbridge.providers.factory import build_provider
from mailbridge.providers.smpp import SmppProvider
from mailbridge.providers.smpp_codec import concat_udh, decode_text
from tests.fakes.smsc import ESME_RINVDSTADR, ESME_RINVPASWD, FakeSmsc
from tests.tools import skip_unless_ci

PASSWORD = "secret"


class Sink:
    """Records what the provider reports; can hold or fail the calls."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.mo: list[InboundSms] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def _wait(self) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("storage down")

    async def receipt(self, receipt: Receipt) -> None:
        await self._wait()
        self.receipts.append(receipt)

    async def inbound(self, sms: InboundSms) -> None:
        await self._wait()
        self.mo.append(sms)


Make = Callable[..., SmppProvider]


@pytest.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    async with FakeSmsc(password=PASSWORD) as server:
        yield server


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def make(smsc: FakeSmsc, sink: Sink) -> AsyncIterator[Make]:
    made: list[SmppProvider] = []

    def build(**keys: Any) -> SmppProvider:
        fields: dict[str, Any] = {
            "name": "smpp",
            "type": "smpp",
            "host": "127.0.0.1",
            "port": smsc.port,
            "system_id": "client",
            "password": PASSWORD,
            "timeout_s": 2.0,
            "connect_timeout_s": 2.0,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.2,
        }
        fields.update(keys)
        lines = ["[[providers]]"] + [f"{k} = {_toml(v)}" for k, v in fields.items()]
        settings = parse_config("\n".join(lines) + "\n")
        provider = build_provider(settings.providers[0], sink)
        assert isinstance(provider, SmppProvider)
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def sms(
    text: str = "hello",
    *,
    sender: str = "Alex",
    recipient: str = "+79991234567",
    fmt: Format = Format.SMS,
    sms_id: int = 1,
) -> Outbound:
    return Outbound(
        sms_id=sms_id, request_id="7", recipient=recipient, text=text, sender=sender, format=fmt
    )


async def send_one(provider: SmppProvider, item: Outbound | None = None) -> Any:
    [result] = await provider.send([item or sms()])
    return result


class TestSubmit:
    async def test_fields(self, smsc: FakeSmsc, make: Make) -> None:
        """An alphanumeric sender is TON 5/NPI 0, the number TON 1/NPI 1, receipts asked for."""
        result = await send_one(make())
        assert isinstance(result, Sent)
        [got] = smsc.submits
        assert result.provider_id == got.message_id
        assert (got.source, got.source_ton, got.source_npi) == ("Alex", 5, 0)
        assert (got.destination, got.dest_ton, got.dest_npi) == ("79991234567", 1, 1)
        assert (got.registered_delivery, got.data_coding, got.esm_class) == (1, 0, 0)
        assert got.payload == b"hello"
        assert smsc.binds == [("bind_transceiver", "client", "", 0)]

    async def test_numeric_sender_and_options(self, smsc: FakeSmsc, make: Make) -> None:
        """A numeric sender is TON 1/NPI 1; registered_delivery off; explicit dest TON/NPI."""
        provider = make(registered_delivery=False, dest_ton=0, dest_npi=0)
        await send_one(provider, sms(sender="+79990001122"))
        [got] = smsc.submits
        assert (got.source, got.source_ton, got.source_npi) == ("79990001122", 1, 1)
        assert (got.dest_ton, got.dest_npi, got.registered_delivery) == (0, 0, 0)

    @pytest.mark.parametrize(
        ("scheme", "system_type", "text", "coding", "payload"),
        [
            ("smsc", "", "Café", 0, b"Caf\x05"),
            ("smsc", "ISO", "Café", 4, "Café".encode("latin-1")),
            ("standard", "ISO", "Café", 3, "Café".encode("latin-1")),
            ("smsc", "", "Привет", 8, "Привет".encode("utf-16-be")),
            ("standard", "", "Привет", 8, "Привет".encode("utf-16-be")),
        ],
    )
    async def test_data_coding(
        self,
        smsc: FakeSmsc,
        make: Make,
        scheme: str,
        system_type: str,
        text: str,
        coding: int,
        payload: bytes,
    ) -> None:
        """GSM 0 / Latin-1 coding 1 / UCS-2 coding 2 as coding * 4 or the standard values."""
        await send_one(make(data_coding=scheme, system_type=system_type), sms(text))
        [got] = smsc.submits
        assert (got.data_coding, got.payload) == (coding, payload)
        assert smsc.binds[0][2] == system_type

    async def test_flash(self, smsc: FakeSmsc, make: Make) -> None:
        """Flash (format 1) is message class 0 in data_coding."""
        await send_one(make(), sms(fmt=Format.FLASH))
        assert smsc.submits[0].data_coding == 0x10

    async def test_format_not_carried(self, smsc: FakeSmsc, make: Make) -> None:
        """A format the type does not carry fails that SMS, nothing is submitted."""
        result = await send_one(make(), sms(fmt=Format.VOICE))
        assert isinstance(result, PermanentProviderError)
        assert smsc.submits == []

    async def test_long_text(self, smsc: FakeSmsc, make: Make) -> None:
        """A long text goes as the core's parts with a UDH, on one connection, within a minute."""
        text = "Привет, мир! " * 20
        result = await send_one(make(), sms(text))
        parts = split_text(text).parts
        assert isinstance(result, Sent)
        assert result.parts == len(parts) == len(smsc.submits)
        assert result.provider_id == ",".join(s.message_id or "" for s in smsc.submits)
        refs = {s.concat[0] for s in smsc.submits if s.concat}
        assert len(refs) == 1
        assert [s.concat[1:] if s.concat else None for s in smsc.submits] == [
            (len(parts), i + 1) for i in range(len(parts))
        ]
        assert "".join(decode_text(s.payload, s.data_coding) for s in smsc.submits) == text
        assert len({s.session for s in smsc.submits}) == 1
        assert smsc.submits[-1].at - smsc.submits[0].at < 60


class TestFaults:
    async def test_bind_refused(self, smsc: FakeSmsc, make: Make) -> None:
        """A refused bind is a provider fault, logged once per backoff without the password."""
        smsc.faults.bind_status = ESME_RINVPASWD
        with capture_logs() as logs:
            provider = make(reconnect_min_s=0.2, reconnect_max_s=0.2)
            with pytest.raises(ProviderUnavailableError) as info:
                await send_one(provider)
            await asyncio.sleep(0.5)
        assert "ESME_RINVPASWD" in str(info.value)
        assert PASSWORD not in str(info.value)
        refusals = [e for e in logs if e["event"] == "smpp bind refused"]
        attempts = [b for b in smsc.binds if b[3] == ESME_RINVPASWD]
        assert 2 <= len(attempts) <= 10  # one per backoff of 0.1-0.2 s, not a tight loop
        assert len(refusals) == len(attempts)  # one line per attempt, i.e. per backoff
        assert all(e["log_level"] == "error" for e in refusals)
        assert PASSWORD not in repr(logs)
        smsc.faults.bind_status = 0  # fixed at the SMSC: the next attempt binds
        await smsc.wait_for(lambda: smsc.binds[-1][3] == 0, what="a bind accepted")
        assert isinstance(await send_one(provider), Sent)

    async def test_wrong_password(self, smsc: FakeSmsc, make: Make) -> None:
        """The SMSC's own refusal of the password is a provider fault too."""
        with pytest.raises(ProviderUnavailableError):
            await send_one(make(password="nope"))

    @pytest.mark.parametrize("fault", ["throttle", "queue_full", "syserr"])
    async def test_slow_down(self, smsc: FakeSmsc, make: Make, fault: str) -> None:
        """Throttling, queue full and system errors are temporary and pause the session."""
        setattr(smsc.faults, fault, 1)
        provider = make()
        result = await send_one(provider)
        assert isinstance(result, TemporaryProviderError)
        assert result.retry_after_s is not None
        assert result.retry_after_s >= 1.0
        assert isinstance(await send_one(provider), Sent)
        first, second = smsc.submits
        assert second.at - first.at >= 0.09  # the session paused before the next submit

    async def test_invalid_address(self, smsc: FakeSmsc, make: Make) -> None:
        """An invalid destination fails that SMS (permanent), nothing raised."""
        smsc.faults.reject = {"79990000666": ESME_RINVDSTADR}
        result = await send_one(make(), sms(recipient="+79990000666"))
        assert isinstance(result, PermanentProviderError)
        assert "ESME_RINVDSTADR" in str(result)

    async def test_generic_nack(self, smsc: FakeSmsc, make: Make) -> None:
        """A generic_nack for a submit is temporary; the session goes on."""
        smsc.faults.nack = 1
        provider = make()
        result = await send_one(provider)
        assert isinstance(result, TemporaryProviderError)
        assert "generic_nack" in str(result)
        assert isinstance(await send_one(provider), Sent)

    async def test_connection_dropped_with_submits_in_flight(
        self, smsc: FakeSmsc, make: Make
    ) -> None:
        """Submits without a response when the connection drops raise temporary; after the
        reconnect the same SMS goes again and is taken."""
        provider = make(window=5)
        await send_one(provider)
        smsc.faults.silent = True
        sends = [asyncio.create_task(send_one(provider, sms(sms_id=i))) for i in range(3)]
        await smsc.wait_for(lambda: len(smsc.submits) == 4, what="three submits in flight")
        smsc.faults.silent = False
        smsc.drop_all()
        results = await asyncio.gather(*sends, return_exceptions=True)
        assert all(isinstance(r, TemporaryProviderError) for r in results)
        assert "connection lost" in str(results[0])
        again = await send_one(provider, sms(sms_id=0))
        assert isinstance(again, Sent)
        assert len(smsc.binds) == 2

    async def test_drop_after(self, smsc: FakeSmsc, make: Make) -> None:
        """The SMSC closing the connection right on a submit is a temporary error."""
        smsc.faults.drop_after = 0
        provider = make()
        with pytest.raises(TemporaryProviderError, match="connection lost"):
            await send_one(provider)
        assert isinstance(await send_one(provider), Sent)

    async def test_slow_responses(self, smsc: FakeSmsc, make: Make) -> None:
        """A response within timeout_s is taken; one later is a temporary error."""
        smsc.faults.delay_s = 0.2
        provider = make(timeout_s=1.5)
        assert isinstance(await send_one(provider), Sent)
        smsc.faults.delay_s = 2.5
        result = await send_one(provider)
        assert isinstance(result, TemporaryProviderError)
        assert "no submit_sm_resp" in str(result)

    async def test_window(self, smsc: FakeSmsc, make: Make) -> None:
        """No more than `window` submits await their response at once."""
        smsc.faults.silent = True
        provider = make(window=3, timeout_s=3.0)
        sends = [asyncio.create_task(send_one(provider, sms(sms_id=i))) for i in range(6)]
        await smsc.wait_for(lambda: len(smsc.submits) >= 3, what="a full window")
        await asyncio.sleep(0.2)
        assert len(smsc.submits) == 3
        smsc.faults.silent = False
        await asyncio.gather(*sends)
        assert len(smsc.submits) == 6

    async def test_enquire_link_and_smsc_unbind(self, smsc: FakeSmsc, make: Make) -> None:
        """enquire_link goes out every enquire_link_s; an unbind from the SMSC reconnects."""
        provider = make(enquire_link_s=0.05)
        await send_one(provider)
        await smsc.wait_for(lambda: smsc.enquire_links >= 2, what="enquire_link")
        smsc.drop_all()
        await smsc.wait_for(lambda: len(smsc.binds) == 2, what="a reconnect")
        assert isinstance(await send_one(provider), Sent)

    async def test_unanswered_enquire_link_reconnects(self, smsc: FakeSmsc, make: Make) -> None:
        """An enquire_link unanswered for timeout_s drops the connection; it reconnects."""
        smsc.faults.mute_enquire_link = True
        provider = make(enquire_link_s=0.05, timeout_s=0.2)
        await send_one(provider)
        await smsc.wait_for(lambda: len(smsc.binds) >= 2, what="a reconnect")
        smsc.faults.mute_enquire_link = False
        assert isinstance(await send_one(provider), Sent)

    async def test_unbind_from_the_smsc(self, smsc: FakeSmsc, make: Make) -> None:
        """An unbind from the SMSC is answered; the session binds again and sends."""
        provider = make()
        await send_one(provider)
        await smsc.unbind_all()
        await smsc.wait_for(lambda: len(smsc.binds) == 2, what="a new bind")
        assert smsc.unbind_resps == 1
        assert isinstance(await send_one(provider), Sent)
        assert len(smsc.accepted) == 2

    async def test_clean_unbind_after_window_drains(self, smsc: FakeSmsc, make: Make) -> None:
        """aclose lets submits in flight finish, then unbinds."""
        smsc.faults.delay_s = 0.3
        provider = make()
        await provider.send([sms(sms_id=99)])  # bound
        sending = asyncio.create_task(send_one(provider))
        await smsc.wait_for(lambda: len(smsc.submits) == 2, what="a submit in flight")
        await provider.aclose()
        assert isinstance(await sending, Sent)
        assert smsc.unbinds == 1

    async def test_tls(self, tmp_path: Path, sink: Sink) -> None:
        """tls = true speaks SMPP over TLS, checking the certificate against tls_ca."""
        cert, key = _certificate(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        async with FakeSmsc(password=PASSWORD, tls=context) as server:
            text = (
                f'[[providers]]\nname = "t"\ntype = "smpp"\nhost = "127.0.0.1"\n'
                f'port = {server.port}\nsystem_id = "client"\npassword = "{PASSWORD}"\n'
                f'tls = true\ntls_ca = "{cert}"\n'
            )
            provider = build_provider(parse_config(text).providers[0], sink)
            try:
                assert isinstance(await send_one(provider), Sent)  # type: ignore[arg-type]
            finally:
                await provider.aclose()
            assert len(server.accepted) == 1


def _certificate(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_unless_ci("openssl is not installed: cannot make a test certificate")
        raise AssertionError("unreachable")
    cert, key = folder / "smsc.pem", folder / "smsc.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class TestReceipts:
    async def test_receipt_after_submit(self, smsc: FakeSmsc, make: Make, sink: Sink) -> None:
        """A receipt becomes a Receipt with the id the submit got, state, error and time."""
        smsc.faults.receipts = "after"
        smsc.faults.receipt_stat = "UNDELIV"
        smsc.faults.receipt_err = "012"
        result = await send_one(make())
        await smsc.wait_for(lambda: len(sink.receipts) == 1, what="the receipt")
        [receipt] = sink.receipts
        assert receipt.message_id == result.provider_id
        assert (receipt.state, receipt.status, receipt.error_code) == (
            ReceiptState.FAILED,
            "UNDELIV",
            "012",
        )
        assert receipt.provider == "smpp"

    async def test_receipt_before_submit_resp(self, smsc: FakeSmsc, make: Make, sink: Sink) -> None:
        """A receipt that comes before its submit_sm_resp is passed on, not dropped."""
        smsc.faults.receipts = "before"
        smsc.faults.receipt_tlvs = False
        result = await send_one(make())
        await smsc.wait_for(lambda: len(sink.receipts) == 1, what="the receipt")
        assert sink.receipts[0].message_id == result.provider_id
        assert sink.receipts[0].state == ReceiptState.DELIVERED

    async def test_receipts_out_of_order(self, smsc: FakeSmsc, make: Make, sink: Sink) -> None:
        """Receipts in reverse order are all passed on."""
        smsc.faults.receipts = "hold"
        provider = make()
        ids = [(await send_one(provider, sms(sms_id=i))).provider_id for i in range(3)]
        await smsc.flush_receipts(reverse=True)
        await smsc.wait_for(lambda: len(sink.receipts) == 3, what="three receipts")
        assert [r.message_id for r in sink.receipts] == ids[::-1]

    async def test_transmitter_and_receiver(self, smsc: FakeSmsc, make: Make, sink: Sink) -> None:
        """bind = transmitter+receiver: two binds; receipts come over the receiver."""
        smsc.faults.receipts = "after"
        provider = make(bind="transmitter+receiver")
        await smsc.wait_for(lambda: len(smsc.bound()) == 2, what="two binds")
        result = await send_one(provider)
        await smsc.wait_for(lambda: len(sink.receipts) == 1, what="the receipt")
        assert sink.receipts[0].message_id == result.provider_id
        assert sorted(b[0] for b in smsc.binds) == ["bind_receiver", "bind_transmitter"]


class TestInbound:
    @pytest.mark.parametrize(
        ("data", "coding", "text"),
        [
            (b"Hi \x1b\x65", 0, "Hi €"),
            ("déjà vu".encode("latin-1"), 3, "déjà vu"),
            ("Ответ".encode("utf-16-be"), 8, "Ответ"),
        ],
    )
    async def test_decoded(
        self, smsc: FakeSmsc, make: Make, sink: Sink, data: bytes, coding: int, text: str
    ) -> None:
        """GSM 7-bit, Latin-1 and UCS-2 all decode; the phone becomes E.164."""
        make()
        status = await smsc.deliver(
            source="79991234567", destination="Alex", short_message=data, data_coding=coding
        )
        assert status == 0
        [got] = sink.mo
        assert (got.source, got.destination, got.text, got.concat) == (
            "+79991234567",
            "Alex",
            text,
            None,
        )

    async def test_parts_with_udh_and_sar(self, smsc: FakeSmsc, make: Make, sink: Sink) -> None:
        """An MO in several parts: one InboundSms per part, Concat from the UDH or SAR TLVs."""
        make()
        for i, piece in enumerate(["first ", "second"]):
            await smsc.deliver(
                source="79991234567",
                destination="Alex",
                short_message=concat_udh(42, 2, i + 1) + piece.encode("ascii"),
                esm_class=0x40,
            )
        await smsc.deliver(
            source="79991234567",
            destination="Alex",
            short_message=b"sar part",
            tlvs={"sar_msg_ref_num": 513, "sar_total_segments": 3, "sar_segment_seqnum": 2},
        )
        got = [
            (s.text, (s.concat.reference, s.concat.total, s.concat.sequence))
            for s in sink.mo
            if s.concat is not None
        ]
        assert len(got) == len(sink.mo)
        assert got == [("first ", (42, 2, 1)), ("second", (42, 2, 2)), ("sar part", (513, 3, 2))]

    async def test_answered_only_after_stored(self, smsc: FakeSmsc, make: Make, sink: Sink) -> None:
        """deliver_sm_resp goes out only once the sink returned."""
        make()
        sink.gate = asyncio.Event()
        delivering = asyncio.create_task(
            smsc.deliver(source="79991234567", destination="Alex", short_message=b"yes")
        )
        await asyncio.sleep(0.3)
        assert not delivering.done()
        assert sink.mo == []
        sink.gate.set()
        assert await delivering == 0
        assert [s.text for s in sink.mo] == ["yes"]

    async def test_sink_failure_is_not_acknowledged(
        self, smsc: FakeSmsc, make: Make, sink: Sink
    ) -> None:
        """A sink that cannot store gets ESME_RX_T_APPN: the SMSC delivers it again."""
        make()
        sink.fail = True
        status = await smsc.deliver(source="79991234567", destination="Alex", short_message=b"x")
        assert status == 0x64


class TestUnreadable:
    async def test_broken_udh_is_refused(self, smsc: FakeSmsc, make: Make, sink: Sink) -> None:
        """An MO whose UDH is longer than the message gets ESME_RX_P_APPN, nothing stored."""
        make()
        status = await smsc.deliver(
            source="79991234567", destination="Alex", short_message=b"\x09\x00\x03", esm_class=0x40
        )
        assert status == 0x65
        assert sink.mo == []

    async def test_receipt_without_id_is_acknowledged(
        self, smsc: FakeSmsc, make: Make, sink: Sink
    ) -> None:
        """A receipt with no message id is acknowledged (logged), nothing passed on."""
        make()
        status = await smsc.deliver(
            source="79991234567", destination="Alex", short_message=b"stat:DELIVRD", esm_class=4
        )
        assert status == 0
        assert sink.receipts == []

    async def test_no_sink_no_acknowledgement(self, smsc: FakeSmsc) -> None:
        """Without a sink nothing can be stored: ESME_RX_T_APPN, the SMSC keeps it."""
        text = (
            f'[[providers]]\nname = "n"\ntype = "smpp"\nhost = "127.0.0.1"\n'
            f'port = {smsc.port}\nsystem_id = "client"\npassword = "{PASSWORD}"\n'
        )
        provider = build_provider(parse_config(text).providers[0])
        try:
            status = await smsc.deliver(source="79991234567", destination="A", short_message=b"x")
            assert status == 0x64
        finally:
            await provider.aclose()
