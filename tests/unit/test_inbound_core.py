"""Inbound SMS decisions: part reassembly, whom to mail, the mail's headers and text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.inbound import (
    GAP,
    PART_WAIT_S,
    SUBJECT_MAX,
    InboundRoute,
    LastRequest,
    StoredPart,
    assemble,
    inbound_mail,
    inbound_route,
    inbound_subject,
    is_whole,
    part_window_open,
    phone_address,
    phone_key,
)

T0 = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
DAY = 86400.0


def part(seq: int, text: str) -> StoredPart:
    """A part received at T0."""
    return StoredPart(sequence=seq, text=text, received_at=T0)


class TestParts:
    def test_whole_in_any_order(self) -> None:
        """Parts arriving out of order are joined by sequence."""
        parts = [part(3, "c"), part(1, "a"), part(2, "b")]
        assert is_whole(parts, 3)
        assert assemble(parts, 3) == "abc"

    def test_missing_part(self) -> None:
        """A missing sequence: not whole, and written as the gap marker."""
        parts = [part(1, "a"), part(3, "c")]
        assert not is_whole(parts, 3)
        assert assemble(parts, 3) == f"a{GAP}c"

    def test_repeat_keeps_first(self) -> None:
        """A part sent again changes nothing."""
        parts = [part(1, "a"), part(1, "X"), part(2, "b")]
        assert assemble(parts, 2) == "ab"

    def test_out_of_range_appended(self) -> None:
        """A sequence beyond the total (broken UDH) is not lost."""
        assert assemble([part(1, "a"), part(5, "z")], 1) == "az"

    def test_window(self) -> None:
        """Parts are waited for PART_WAIT_S after the first one."""
        assert part_window_open(T0, T0 + timedelta(seconds=PART_WAIT_S - 1))
        assert not part_window_open(T0, T0 + timedelta(seconds=PART_WAIT_S))

    @given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=8), st.randoms())
    def test_join_gives_text_back(self, pieces: list[str], rnd: object) -> None:
        """Any shuffle of all parts assembles to the original text."""
        parts = [part(i + 1, t) for i, t in enumerate(pieces)]
        rnd.shuffle(parts)  # type: ignore[attr-defined]
        assert is_whole(parts, len(pieces))
        assert assemble(parts, len(pieces)) == "".join(pieces)


def last(sent_at: datetime = T0, mail_from: str = "zabbix@example.com") -> LastRequest:
    """A request that sent an SMS to the phone at ``sent_at``."""
    return LastRequest(
        request_id="42", mail_from=mail_from, sent_at=sent_at, in_reply_to="<m1@example.com>"
    )


class TestRoute:
    def test_recent_request_sender(self) -> None:
        """Within the window: the request's envelope sender, with its thread."""
        route = inbound_route(last(), now=T0 + timedelta(hours=1), window_s=DAY, mail_to="noc@x")
        assert route == InboundRoute(
            to="zabbix@example.com",
            request_id="42",
            in_reply_to="<m1@example.com>",
            references="<m1@example.com>",
        )

    def test_window_edge(self) -> None:
        """Exactly at the window's end still matches; a second later does not."""
        now = T0 + timedelta(seconds=DAY)
        assert inbound_route(last(), now=now, window_s=DAY, mail_to=None).request_id == "42"
        later = now + timedelta(seconds=1)
        assert inbound_route(last(), now=later, window_s=DAY, mail_to="noc@x") == InboundRoute(
            to="noc@x"
        )

    def test_no_request_fallback_then_kept(self) -> None:
        """No request: mail_to; no mail_to either: kept."""
        assert inbound_route(None, now=T0, window_s=DAY, mail_to="noc@x").to == "noc@x"
        assert inbound_route(None, now=T0, window_s=DAY, mail_to=None) == InboundRoute(to=None)

    @pytest.mark.parametrize("sender", ["", "MAILER-DAEMON@example.com", "not an address"])
    def test_unmailable_sender_falls_through(self, sender: str) -> None:
        """A null or daemon sender is not mailed: mail_to instead."""
        route = inbound_route(last(mail_from=sender), now=T0, window_s=DAY, mail_to="noc@x")
        assert route == InboundRoute(to="noc@x")

    def test_zero_window(self) -> None:
        """Window 0 matches only an SMS sent this very instant."""
        assert (
            inbound_route(last(), now=T0 + timedelta(seconds=1), window_s=0, mail_to=None).to
            is None
        )


class TestSubject:
    def test_short_text_whole(self) -> None:
        """A short text is the subject, on one line."""
        assert inbound_subject("ok,\r\n taking it") == "ok, taking it"

    def test_long_text_cut_at_word(self) -> None:
        """A long text is cut at a word boundary with an ellipsis, within the limit."""
        text = "word " * 40
        subject = inbound_subject(text)
        assert len(subject) <= SUBJECT_MAX
        assert subject.endswith("word…")

    def test_one_long_word(self) -> None:
        """No space to cut at: cut inside the word."""
        subject = inbound_subject("x" * 200)
        assert subject == "x" * (SUBJECT_MAX - 1) + "…"

    def test_empty(self) -> None:
        """An empty SMS still gets a subject."""
        assert inbound_subject(" \n ") == "SMS"

    @given(st.text(max_size=300))
    def test_never_a_line_break(self, text: str) -> None:
        """Nothing in the text can break the header line."""
        subject = inbound_subject(text)
        assert "\n" not in subject
        assert "\r" not in subject
        assert 0 < len(subject) <= SUBJECT_MAX


class TestMail:
    def test_phone_address(self) -> None:
        """The phone at the gateway's domain; odd characters dropped."""
        assert phone_address("+79991234567", "SMS.example.com.") == "+79991234567@sms.example.com"
        assert phone_address("<x>\r\n", "d") == "x@d"
        assert phone_address("", "d") == "unknown@d"

    def test_reply_to_alert(self) -> None:
        """From the phone, to the alert's sender, threaded, with the SMS text and origin."""
        route = inbound_route(last(), now=T0, window_s=DAY, mail_to=None)
        mail = inbound_mail(
            text="ack, on it\r\n",
            source="+79991234567",
            destination="MAILBRIDGE",
            received_at=T0,
            route=route,
            domain="sms.example.com",
        )
        assert mail.from_address == "+79991234567@sms.example.com"
        assert mail.to == "zabbix@example.com"
        assert mail.subject == "ack, on it"
        assert (mail.in_reply_to, mail.references) == ("<m1@example.com>", "<m1@example.com>")
        assert mail.auto_submitted == "auto-generated"
        assert mail.body == (
            "ack, on it\n\n-- \nSMS from +79991234567 to MAILBRIDGE\n"
            "received 2026-12-02 16:00:00 UTC\nin reply to request ID - 42\n"
        )

    def test_fallback_has_no_thread(self) -> None:
        """Mailed to mail_to: no In-Reply-To, no request named."""
        mail = inbound_mail(
            text="hello",
            source="+1",
            destination="",
            received_at=T0,
            route=InboundRoute(to="noc@x"),
            domain="d",
        )
        assert (mail.to, mail.in_reply_to, mail.references) == ("noc@x", "", "")
        assert "request" not in mail.body
        assert "SMS from +1\n" in mail.body

    def test_kept_sms_has_no_mail(self) -> None:
        """Composing a mail for a kept SMS is a caller bug."""
        with pytest.raises(ValueError, match="kept"):
            inbound_mail(
                text="x",
                source="+1",
                destination="",
                received_at=T0,
                route=InboundRoute(to=None),
                domain="d",
            )


class TestPhoneKey:
    @pytest.mark.parametrize(
        ("source", "key"),
        [
            ("+79991234567", "+79991234567"),
            ("79991234567", "+79991234567"),
            (" 79991234567 ", "+79991234567"),
            ("1234", "1234"),
            ("MTS", "MTS"),
            ("1234567890123456", "1234567890123456"),
        ],
    )
    def test_key(self, source: str, key: str) -> None:
        """International digits get their +; short codes and names stay."""
        assert phone_key(source) == key
