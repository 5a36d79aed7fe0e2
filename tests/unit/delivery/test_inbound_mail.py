"""The mail of an SMS from a phone, as the mailer writes it (RFC 5322, RFC 3834)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

from mailbridge.core.records import InboundMailJob
from mailbridge.delivery.mailer import build_inbound, inbound_message_id

T0 = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


def job(**overrides: object) -> InboundMailJob:
    """An inbound mail row as the mailer claims it."""
    fields: dict[str, object] = {
        "inbound_id": 12,
        "to": "zabbix@example.com",
        "from_address": "+79991234567@sms.example.com",
        "subject": "ack, on it",
        "in_reply_to": "<m1@example.com>",
        "references": "<m1@example.com>",
        "body": "ack, on it\n\n-- \nSMS from +79991234567\n",
        "attempts": 0,
    }
    fields.update(overrides)
    return InboundMailJob(**fields)  # type: ignore[arg-type]


class TestBuildInbound:
    def test_headers_and_body(self) -> None:
        """From the phone, to the recipient, threaded, auto-generated, UTF-8 text."""
        msg = build_inbound(job(), hostname="mx.test", now=T0)
        parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
        assert parsed["From"] == "+79991234567@sms.example.com"
        assert parsed["To"] == "zabbix@example.com"
        assert parsed["Subject"] == "ack, on it"
        assert parsed["In-Reply-To"] == "<m1@example.com>"
        assert parsed["References"] == "<m1@example.com>"
        assert parsed["Auto-Submitted"] == "auto-generated"
        assert parsed["Message-ID"] == "<inbound.12@mx.test>"
        assert (
            parsed.get_content().replace("\r\n", "\n")
            == "ack, on it\n\n-- \nSMS from +79991234567\n"
        )

    def test_no_thread_no_headers(self) -> None:
        """Without a thread there is no In-Reply-To or References."""
        msg = build_inbound(job(in_reply_to="", references=""), hostname="mx.test", now=T0)
        assert msg["In-Reply-To"] is None
        assert msg["References"] is None

    def test_text_from_the_phone_cannot_add_a_header(self) -> None:
        """CR/LF in the subject (taken from the SMS) is flattened, never a new header."""
        msg = build_inbound(
            job(subject="hi\r\nBcc: victim@example.com"), hostname="mx.test", now=T0
        )
        raw = msg.as_bytes()
        assert b"\r\nBcc:" not in raw
        parsed = message_from_bytes(raw, policy=policy.default)
        assert parsed["Bcc"] is None
        assert "victim@example.com" in parsed["Subject"]

    def test_non_ascii_text(self) -> None:
        """Cyrillic from a UCS-2 SMS survives subject and body."""
        msg = build_inbound(job(subject="принято", body="принято\n"), hostname="mx.test", now=T0)
        parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
        assert parsed["Subject"] == "принято"
        assert parsed.get_content().replace("\r\n", "\n") == "принято\n"

    def test_message_id_fixed_per_row(self) -> None:
        """A copy sent again after a crash carries the same Message-ID."""
        assert inbound_message_id(job(), "mx.test") == inbound_message_id(job(), "mx.test")
        assert inbound_message_id(job(inbound_id=13), "mx.test") != inbound_message_id(
            job(), "mx.test"
        )
