"""Tests for mailbridge.core.intake: mailboxes, templates, reply drafts, intake assembly."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core import intake, recipients
from mailbridge.core.encoding import split_text
from mailbridge.core.fields import Fields, read_fields
from mailbridge.core.phones import normalize_number
from mailbridge.core.request import build_forward_request
from mailbridge.errors import RequestError
from mailbridge.models import (
    Command,
    CommandEntry,
    Format,
    MailContent,
    Message,
    OnError,
    RouteKind,
    SmsRequest,
)
from mailbridge.settings import (
    Account,
    ForwardAlias,
    NumberAddressSettings,
    Settings,
    SmtpSettings,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ALIAS = ForwardAlias(
    address="oncall@sms.example.com",
    account="alex",
    to=("+79991112233",),
    allowed_senders=("zabbix@example.com",),
)
SETTINGS = Settings(
    smtp=SmtpSettings(domains=("sms.example.com", "localhost"), command_address="send"),
    accounts=(Account(login="alex", password_hash="plain:x", default_sender="Alex"),),
    forward=(ALIAS,),
    number_addresses=NumberAddressSettings(enabled=True, account="alex"),
)
ACCOUNT = SETTINGS.accounts[0]


def content(**kw: str) -> MailContent:
    base = {"subject": "Disk full", "text": "body\n", "command": "body", "charset": "utf-8"}
    base.update(kw)
    return MailContent(**base)


def norm(raw: str) -> str:
    return normalize_number(raw, region="RU")


def env(mail_from: str = "zabbix@example.com") -> intake.MailEnvelope:
    return intake.MailEnvelope(
        received_at=NOW,
        client_ip="127.0.0.1",
        mail_from=mail_from,
        rcpt_to=("send@sms.example.com",),
        raw=b"Subject: x\r\n\r\nbody\r\n",
    )


def request(client_id: str | None = None, test: int = 0) -> SmsRequest:
    return SmsRequest(
        account="alex",
        client_id=client_id,
        due=NOW,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=test,
        messages=(Message(text="hi", recipients=("+79991234567",), split=split_text("hi")),),
    )


def command(**kw: str) -> Command:
    fields: dict[str, str] = {
        "login": "alex",
        "psw": "x",
        "id": "",
        "time": "",
        "tz": "",
        "translit": "",
        "format": "",
        "sender": "",
        "test": "",
    }
    fields.update(kw)
    return Command(
        login=fields["login"], psw=fields["psw"], id=fields["id"], time=fields["time"],
        tz=fields["tz"], translit=fields["translit"], format=fields["format"],
        sender=fields["sender"], test=fields["test"],
        entries=(CommandEntry(phones="+79991234567", text="hi"),),
    )  # fmt: skip


class TestClassifyRecipient:
    @pytest.mark.parametrize(
        ("address", "kind", "number"),
        [
            ("send@sms.example.com", "command", None),
            ("SEND@SMS.Example.COM", "command", None),
            ("send@localhost", "command", None),
            ("oncall@sms.example.com", "forward", None),
            ("Oncall@SMS.example.com", "forward", None),
            ("+79991234567@sms.example.com", "number", "+79991234567"),
            ("89991234567@localhost", "number", "+79991234567"),
            ("send@other.example.com", None, None),
            ("nobody@sms.example.com", None, None),
            ("12@sms.example.com", None, None),
            ("+7999@sms.example.com", None, None),
            ("send", None, None),
        ],
    )
    def test_kinds(self, address: str, kind: str | None, number: str | None) -> None:
        """Each recipient maps to its mailbox kind, or to none."""
        route = recipients.classify_recipient(address, SETTINGS, normalize=norm)
        if kind is None:
            assert route is None
        else:
            assert route is not None
            assert (route.kind, route.number) == (kind, number)

    def test_numbers_off(self) -> None:
        """Number addresses are not mailboxes unless enabled."""
        off = Settings(smtp=SETTINGS.smtp)
        assert recipients.classify_recipient("+79991234567@localhost", off, normalize=norm) is None


class TestSenderAllowed:
    @pytest.mark.parametrize(
        ("sender", "patterns", "allowed"),
        [
            ("zabbix@example.com", ["zabbix@example.com"], True),
            ("ZABBIX@Example.com", ["zabbix@example.com"], True),
            ("other@example.com", ["zabbix@example.com"], False),
            ("a@example.com", ["*@example.com"], True),
            ("a@sub.example.com", ["*@example.com"], False),
            ("a@sub.example.com", ["*@*.example.com"], True),
            ("a@example.com.evil", ["*@example.com"], False),
            ("a+b@example.com", ["a+b@example.com"], True),
            ("aXb@example.com", ["a.b@example.com"], False),
            ("", ["*"], False),
            ("x@y", [], False),
        ],
    )
    def test_table(self, sender: str, patterns: list[str], allowed: bool) -> None:
        """Exact addresses and * wildcards, case-insensitive, nothing else is special."""
        assert recipients.sender_allowed(sender, patterns) is allowed


class TestTemplate:
    @pytest.mark.parametrize(
        ("template", "expected"),
        [
            ("{subject}: {body}", "Disk full: body"),
            ("{from} says {body}", "z@x says body"),
            ("{body} {unknown} {0}", "body {unknown} {0}"),
            ("{{subject}}", "{Disk full}"),
        ],
    )
    def test_fill(self, template: str, expected: str) -> None:
        """Placeholders fill in one pass; other braces stay as written."""
        got = intake.fill_template(template, subject="Disk full", body="body\n\n", sender="z@x")
        assert got == expected

    @pytest.mark.parametrize(
        ("template", "subject", "body", "sender", "expected"),
        [
            ("{subject}: {body}", "", "disk full", "", "disk full"),
            ("{subject}: {body}", "Disk full", "", "", "Disk full"),
            ("{subject}: {body}", "", "", "", ""),
            ("{subject}\n{body}", "", "text", "", "text"),
            ("{from} {subject}: {body}", "", "text", "z@x", "z@x: text"),
            ("Alert {subject}: {body}", "", "text", "", "Alert text"),
            ("{subject} - {body} ({from})", "S", "B", "", "S - B"),
            ("[{subject}] {body}", "", "B", "", "B"),
            ("[{subject}] {body}", "S", "", "", "[S]"),
            ("[{subject}] [{body}]", "", "B", "", "[B]"),
        ],
    )
    def test_empty_field_takes_its_separator(
        self, template: str, subject: str, body: str, sender: str, expected: str
    ) -> None:
        """No dangling separator: an empty subject does not leave ": " at the start."""
        got = intake.fill_template(template, subject=subject, body=body, sender=sender)
        assert got == expected

    def test_values_not_expanded_again(self) -> None:
        """A value holding a placeholder is not filled a second time."""
        got = intake.fill_template("{subject}|{body}", subject="{body}", body="B", sender="")
        assert got == "{body}|B"

    @pytest.mark.parametrize("max_parts", [1, 2, 3])
    def test_cut_to_parts(self, max_parts: int) -> None:
        """A long text is cut to max_parts parts ending with '...'."""
        mail = content(subject="S", text="word " * 400)
        text = intake.template_text("{subject}: {body}", max_parts, content=mail, mail_from="")
        assert text.endswith("...")
        assert split_text(text).count == max_parts

    def test_short_text_untouched(self) -> None:
        """A text that fits is not cut."""
        mail = content(subject="S", text="short\n")
        assert intake.template_text("{subject}: {body}", 1, content=mail, mail_from="") == (
            "S: short"
        )

    def test_from_header_preferred(self) -> None:
        """{from} is the From: address, else the envelope sender."""
        with_header = content(from_address="a@b")
        assert intake.template_text("{from}", 1, content=with_header, mail_from="c@d") == "a@b"
        assert intake.template_text("{from}", 1, content=content(), mail_from="c@d") == "c@d"

    @given(st.text(max_size=800), st.integers(min_value=1, max_value=4))
    def test_cut_always_fits(self, body: str, max_parts: int) -> None:
        """Whatever the body, the text fits max_parts parts."""
        mail = content(subject="", text=body)
        text = intake.template_text("{body}", max_parts, content=mail, mail_from="")
        assert not text or split_text(text).count <= max_parts


class TestReplyDraft:
    @pytest.mark.parametrize(
        ("mail_from", "headers"),
        [
            ("", {}),
            ("MAILER-DAEMON@example.com", {}),
            ("a@b", {"auto_submitted": "auto-generated"}),
            ("a@b", {"auto_submitted": "auto-replied; owner-email=x"}),
            ("a@b", {"precedence": "bulk"}),
            ("a@b", {"precedence": "Junk"}),
            ("a@b", {"precedence": "list"}),
            ("a@b", {"list_id": "<list.example.com>"}),
        ],
    )
    def test_suppressed(self, mail_from: str, headers: dict[str, str]) -> None:
        """No reply to the null sender, auto-submitted, bulk or list mail."""
        assert intake.reply_draft(mail_from, content(**headers)) is None

    @pytest.mark.parametrize("auto", ["", "no", "No"])
    def test_replied(self, auto: str) -> None:
        """Ordinary mail gets a draft with Re: and the threading headers."""
        draft = intake.reply_draft("a@b", content(auto_submitted=auto, message_id="<m@x>"))
        assert draft is not None
        assert (draft.to, draft.subject, draft.in_reply_to, draft.references) == (
            "a@b",
            "Re: Disk full",
            "<m@x>",
            "<m@x>",
        )

    @pytest.mark.parametrize(
        "subject",
        ["x\r\nBcc: evil@example.com", "x\nBcc: evil@example.com", "x\u2028Bcc: e", "x\x00y"],
    )
    def test_no_header_injection(self, subject: str) -> None:
        """Control characters in the subject never reach the draft."""
        draft = intake.reply_draft("a@b", content(subject=subject))
        assert draft is not None
        assert not any(c in draft.subject for c in "\r\n\x00\u2028")

    def test_no_double_re(self) -> None:
        """A subject already starting with Re: is not prefixed again."""
        draft = intake.reply_draft("a@b", content(subject="RE: hello"))
        assert draft is not None
        assert draft.subject == "RE: hello"

    @pytest.mark.parametrize("msgid", ["<a@b>\r\nX-Evil: 1", "junk", "<a b@c>"])
    def test_message_id_cleaned(self, msgid: str) -> None:
        """Only a well-formed <...> Message-ID is quoted."""
        draft = intake.reply_draft("a@b", content(message_id=msgid))
        assert draft is not None
        assert draft.in_reply_to in {"<a@b>", ""}


class TestFallbackContent:
    def test_headers_read(self) -> None:
        """Headers of an unreadable mail are still read for the reply draft."""
        raw = (
            b"Subject: =?utf-8?b?0J/RgNC40LLQtdGC?=\r\nMessage-ID: <x@y>\r\n"
            b"Precedence: bulk\r\n\r\n\xff\xfe"
        )
        got = intake.fallback_content(raw)
        assert (got.subject, got.message_id, got.precedence) == ("Привет", "<x@y>", "bulk")


class TestSmallHelpers:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("42", "42"), ("abc-1.2_3", "abc-1.2_3"), ("0", None), ("2147483648", None),
         ("a b", None), ("", None), ("x" * 41, None)],
    )  # fmt: skip
    def test_client_id(self, raw: str, expected: str | None) -> None:
        """Valid ids are kept, invalid ones dropped."""
        assert read_fields(command(id=raw)).client_id.valid == expected

    @pytest.mark.parametrize(
        ("peer", "expected"),
        [(("127.0.0.1", 1), "127.0.0.1"), (("::ffff:10.0.0.1", 1, 0, 0), "10.0.0.1"),
         (("::1", 1, 0, 0), "::1"), (None, "")],
    )  # fmt: skip
    def test_normalize_ip(self, peer: object, expected: str) -> None:
        """Peer names become plain IPs; IPv4-mapped addresses are IPv4."""
        assert intake.normalize_ip(peer) == expected

    @pytest.mark.parametrize(
        ("ip", "inside"), [("127.0.0.5", True), ("10.0.0.1", False), ("::1", True), ("x", False)]
    )
    def test_ip_in(self, ip: str, inside: bool) -> None:
        """Membership over mixed IPv4/IPv6 networks."""
        nets = (ip_network("127.0.0.0/8"), ip_network("::1/128"))
        assert intake.ip_in(ip, nets) is inside


class TestCommandIntake:
    def build_ok(self, fields: Fields, account: Account) -> SmsRequest:
        return request(client_id=fields.client_id.valid, test=fields.test.get())

    def test_accepted(self) -> None:
        """A verified command becomes an intake with request and fingerprint."""
        got = intake.command_intake(
            env(), settings=SETTINGS, content=content(),
            fields=read_fields(command(id="7", test="1")),
            account=ACCOUNT, login_known=True, build=self.build_ok,
        )  # fmt: skip
        assert got.error is None
        assert got.request is not None
        assert (got.account, got.client_id, got.test, got.mode) == (
            "alex",
            "7",
            1,
            RouteKind.COMMAND,
        )
        assert got.mode is RouteKind.COMMAND
        assert got.fingerprint
        assert got.reply is not None

    def test_refused_login(self) -> None:
        """No verified account: ERROR 2 without an ID."""
        got = intake.command_intake(
            env(), settings=SETTINGS, content=content(), fields=read_fields(command(id="7")),
            account=None, login_known=False, build=self.build_ok,
        )  # fmt: skip
        assert (got.error, got.account, got.client_id) == (2, None, None)

    def test_allowed_ips(self) -> None:
        """A client outside allowed_ips gets ERROR 2."""
        fenced = Account(login="alex", allowed_ips=(ip_network("10.0.0.0/8"),))
        got = intake.command_intake(
            env(), settings=SETTINGS, content=content(), fields=read_fields(command()),
            account=fenced, login_known=True, build=self.build_ok,
        )  # fmt: skip
        assert got.error == 2

    @pytest.mark.parametrize(("code", "client_id"), [(7, "42"), (1, None), (5, None)])
    def test_builder_error(self, code: int, client_id: str | None) -> None:
        """A RequestError of the builder becomes the intake's error; 6/7/8 keep the id."""

        def build(fields: Fields, account: Account) -> SmsRequest:
            raise RequestError(code, "x")

        got = intake.command_intake(
            env(), settings=SETTINGS, content=content(), fields=read_fields(command(id="42")),
            account=ACCOUNT, login_known=True, build=build,
        )  # fmt: skip
        assert (got.error, got.client_id, got.error_detail) == (code, client_id, "x")

    def test_reject_mode_no_reply(self) -> None:
        """on_error = reject: the SMTP answer is the only one."""
        reject = Settings(smtp=SmtpSettings(on_error=OnError.REJECT), accounts=SETTINGS.accounts)
        got = intake.command_intake(
            env(), settings=reject, content=content(), fields=read_fields(command()),
            account=ACCOUNT, login_known=True, build=self.build_ok,
        )  # fmt: skip
        assert got.reply is None


class TestForward:
    def test_forward_request(self) -> None:
        """A forward mail is one message to all phones, under the account, due now."""
        req = build_forward_request(
            account=ACCOUNT, phones=["+79991234567", "+79991234568"], text="t", sender="",
            now=NOW, region="RU", formats=frozenset(Format),
        )  # fmt: skip
        assert (req.account, req.client_id, req.due, req.format, req.test) == (
            "alex", None, NOW, Format.SMS, 0,
        )  # fmt: skip
        assert [(m.text, m.recipients) for m in req.messages] == [
            ("t", ("+79991234567", "+79991234568"))
        ]

    def test_forward_request_prefix(self) -> None:
        """A prefix in a forwarded text applies as in command mode (__MAIL__ needs e-mails)."""
        with pytest.raises(RequestError) as info:
            build_forward_request(
                account=ACCOUNT, phones=["+79991234567"], text="__MAIL__: hi", sender="",
                now=NOW, region="RU", formats=frozenset(Format),
            )  # fmt: skip
        assert (info.value.code, info.value.detail) == (7, "invalid e-mail address")
        voice = build_forward_request(
            account=ACCOUNT, phones=["+79991234567"], text="__CALL__: hi", sender="",
            now=NOW, region="RU", formats=frozenset(Format),
        )  # fmt: skip
        assert (voice.format, voice.messages[0].text) == (Format.VOICE, "hi")

    def test_forward_intake_has_no_reply(self) -> None:
        """Forward and number modes never queue a reply mail."""
        got = intake.request_intake(
            env(), mode=RouteKind.FORWARD, request=request(), account=ACCOUNT, settings=SETTINGS
        )
        assert got.reply is None
        assert got.request is not None
        assert got.request.mode is RouteKind.FORWARD
        assert got.fingerprint
