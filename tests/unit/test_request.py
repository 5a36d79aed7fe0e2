"""Tests for mailbridge.core.request: a parsed command validated against its account."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.core.fields import read_command, read_fields
from mailbridge.core.request import build_request
from mailbridge.errors import ConfigError, RequestError
from mailbridge.models import Command, CommandEntry, Encoding, Format, SmsRequest
from mailbridge.settings import Account

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)  # 12:30 in Moscow
ALL_FORMATS = frozenset(Format)

ACCOUNT = Account(
    login="alex",
    senders=("Alex", "Shop-24"),
    default_sender="Alex",
    groups={1: ("+79990000001", "+79990000002")},
    deny_text=("(?i)casino", "(?i)kazino"),
    blacklist=("+79990000099", "89990000098"),
)


def build(
    text: str,
    *,
    account: Account = ACCOUNT,
    formats: frozenset[Format] = ALL_FORMATS,
    bots: bool = True,
) -> SmsRequest:
    """The request built from command text for the test account at NOW."""
    return build_request(
        read_command(text), account=account, now=NOW, region="RU", formats=formats, bots=bots
    )


def error_code(
    text: str, *, account: Account = ACCOUNT, formats: frozenset[Format] = ALL_FORMATS
) -> int:
    """The SMSC error number building the command text raises."""
    with pytest.raises(RequestError) as info:
        build(text, account=account, formats=formats)
    return info.value.code


class TestSeedExamples:
    @pytest.mark.parametrize(
        ("text", "translit", "fmt", "sender", "test"),
        [
            ("alex:123::::79999999999:message", 0, Format.SMS, "Alex", 0),
            ("alex: psw:::1,1, Alex:79999999999: message", 1, Format.FLASH, "Alex", 0),
            ("alex: psw:::1:79999999999: message", 1, Format.SMS, "Alex", 0),
            ("alex: psw:::, 1:79999999999: message", 0, Format.FLASH, "Alex", 0),
            ("alex: psw:::, 1, Alex:79999999999: message", 0, Format.FLASH, "Alex", 0),
            ("alex: psw:::,1,, 1:79999999999: message", 0, Format.FLASH, "Alex", 1),
        ],
    )
    def test_seed_example(
        self, text: str, translit: int, fmt: Format, sender: str, test: int
    ) -> None:
        """Each example of the seed builds a one-SMS request to +79999999999."""
        req = build(text)
        assert (req.translit, req.format, req.sender, req.test) == (translit, fmt, sender, test)
        assert req.recipients == ("+79999999999",)
        assert req.messages[0].text == "message"
        assert req.sms_count == 1
        assert req.due == NOW
        assert req.client_id is None
        assert req.account == "alex"


def _cmd(
    *,
    id: str = "",
    time: str = "",
    tz: str = "",
    translit: str = "",
    format: str = "",
    sender: str = "",
    test: str = "",
    phones: str = "79991234567",
    text: str = "hello",
) -> str:
    """A single-mode command text with the given fields."""
    return f"alex:pw:{id}:{time},{tz}:{translit},{format},{sender},{test}:{phones}:{text}"


# (id, command text, attribute, expected value)
GOOD = [
    ("id-empty", _cmd(), "client_id", None),
    ("id-min", _cmd(id="1"), "client_id", "1"),
    ("id-max", _cmd(id="2147483647"), "client_id", "2147483647"),
    ("id-string", _cmd(id="order-1.2_x"), "client_id", "order-1.2_x"),
    ("id-40-chars", _cmd(id="a" * 40), "client_id", "a" * 40),
    ("time-relative", _cmd(time="+60"), "due", NOW + timedelta(hours=1)),
    (
        "time-compact-tz",
        _cmd(time="1103251200", tz="-1"),
        "due",
        datetime(2025, 3, 11, 10, tzinfo=UTC),
    ),
    ("time-window", _cmd(time="14-18"), "due", datetime(2025, 3, 10, 11, tzinfo=UTC)),
    ("translit-0", _cmd(translit="0"), "translit", 0),
    ("translit-2", _cmd(translit="2"), "translit", 2),
    ("format-empty", _cmd(), "format", Format.SMS),
    ("format-12", _cmd(format="12"), "format", Format.SOCIAL),
    ("format-binary", _cmd(format="4"), "format", Format.BINARY),
    ("sender-empty-default", _cmd(sender=""), "sender", "Alex"),
    ("sender-allowed", _cmd(sender="Shop-24"), "sender", "Shop-24"),
    ("sender-case", _cmd(sender="ALEX"), "sender", "Alex"),
    ("test-2", _cmd(test="2"), "test", 2),
    ("phones-group", _cmd(phones="G1"), "recipients", ("+79990000001", "+79990000002")),
    ("mes-1000", _cmd(text="a" * 1000), "sms_count", 7),
    ("hlr-no-text", _cmd(format="3", text=""), "format", Format.HLR),
    ("ping-no-text", _cmd(format="6", text=""), "format", Format.PING),
]


class TestGoodFields:
    @pytest.mark.parametrize(
        ("text", "attr", "value"), [c[1:] for c in GOOD], ids=[c[0] for c in GOOD]
    )
    def test_good(self, text: str, attr: str, value: object) -> None:
        """A good value of each field reaches the request."""
        assert getattr(build(text), attr) == value


# (id, command text, SMSC error number) — the SPEC §1 table, bad values
BAD = [
    ("id-zero", _cmd(id="0"), 1),
    ("id-too-big", _cmd(id="2147483648"), 1),
    ("id-41-chars", _cmd(id="a" * 41), 1),
    ("id-huge-number", _cmd(id="9" * 5000), 1),
    ("id-leading-zeros", _cmd(id="0" * 30 + "1"), 1),
    ("id-bad-char", _cmd(id="a/b"), 1),
    ("id-space", _cmd(id="a b"), 1),
    ("time-garbage", _cmd(time="soon"), 5),
    ("time-bad-date", _cmd(time="3102251200"), 5),
    ("tz-garbage", _cmd(tz="msk"), 5),
    ("translit-3", _cmd(translit="3"), 1),
    ("translit-word", _cmd(translit="yes"), 1),
    ("format-13", _cmd(format="13"), 1),
    ("format-negative", _cmd(format="-1"), 1),
    ("format-not-carried", _cmd(format="7"), 1),
    ("test-3", _cmd(test="3"), 1),
    ("test-extra-member", "alex:pw:::,,,1,1:79991234567:hi", 1),
    ("sender-too-long", _cmd(sender="ABCDEFGHIJKL"), 1),
    ("sender-bad-char", _cmd(sender="Al/ex"), 1),
    ("sender-cyrillic", _cmd(sender="Алекс"), 1),
    ("sender-16-digits", _cmd(sender="1" * 16), 1),
    ("sender-not-allowed", _cmd(sender="Bank"), 6),
    ("sender-digits-not-allowed", _cmd(sender="79991234567"), 6),
    ("phones-bad", _cmd(phones="12345"), 7),
    ("phones-one-bad", _cmd(phones="79991234567,abc"), 7),
    ("phones-unknown-group", _cmd(phones="G5"), 7),
    ("phones-telegram-no-bot", _cmd(phones="#12345"), 7),
    ("mes-1001", _cmd(text="a" * 1001), 1),
    ("mes-empty", _cmd(text=""), 1),
    ("mes-prefix-only", _cmd(text="__VIBER__:"), 1),
    ("deny-text", _cmd(text="Best CASINO in town"), 6),
    ("deny-text-after-translit", _cmd(translit="1", text="Казино"), 6),
    ("blacklist", _cmd(phones="79991234567,+79990000099"), 8),
    ("blacklist-normalised", _cmd(phones="+79990000098"), 8),
    ("binary-hex-odd", _cmd(format="5", text="ABC"), 1),
    ("binary-not-latin1", _cmd(format="4", text="Ж"), 1),
    ("email-without-subject", _cmd(format="8", phones="a@example.com"), 1),
    ("list-empty", "alex:pw:::::\n", 7),
    ("list-bad-phones", "alex:pw:::::\n79991234567:a\nnobody:b", 7),
    ("mixed-prefixes", "alex:pw:::::\n79991234567:__VIBER__:a\n79991234568:__SOC__:b", 1),
]


class TestBadFields:
    @pytest.mark.parametrize(("text", "code"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
    def test_bad(self, text: str, code: int) -> None:
        """A bad value of each field is refused with its SMSC number."""
        assert error_code(text, formats=ALL_FORMATS - {Format.MMS}) == code

    def test_blacklist_via_group(self) -> None:
        """A blacklisted member of a group rejects the request with 8."""
        account = replace(ACCOUNT, blacklist=("+79990000002",))
        assert error_code(_cmd(phones="G1"), account=account) == 8


class TestOrder:
    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"id": "0", "time": "bad", "phones": "x"}, 1),
            ({"time": "bad", "translit": "9", "phones": "x"}, 5),
            ({"translit": "9", "sender": "Bank", "phones": "x"}, 1),
            ({"sender": "Bank", "phones": "x"}, 6),
            ({"phones": "x", "text": "a" * 1001}, 7),
            ({"text": "casino" * 200}, 1),
            ({"text": "casino", "phones": "+79990000099"}, 6),
        ],
        ids=[
            "id-first",
            "time-before-translit",
            "translit-before-sender",
            "sender-before-phones",
            "phones-before-text",
            "length-before-deny",
            "deny-before-blacklist",
        ],
    )
    def test_first_failing_check_wins(self, fields: dict[str, str], code: int) -> None:
        """Checks run in the documented order; the first failure is the answer."""
        assert error_code(_cmd(**fields)) == code


class TestPrefixes:
    @pytest.mark.parametrize(
        ("mes", "fmt", "text"),
        [
            ("__CALL__: Hello", Format.VOICE, "Hello"),
            ("__VIBER__: Hello", Format.VIBER, "Hello"),
            ("__SOC__:Hello", Format.SOCIAL, "Hello"),
            ("__viber__ : Hello", Format.VIBER, "Hello"),
            ("__PING__", Format.PING, ""),
            ("__HLR__", Format.HLR, ""),
            ("__HLR__: ignored", Format.HLR, ""),
        ],
    )
    def test_prefix_sets_format(self, mes: str, fmt: Format, text: str) -> None:
        """A prefix at the start of <mes> sets the format and is taken off the text."""
        req = build(_cmd(format="1", text=mes))
        assert req.format == fmt
        assert req.messages[0].text == text
        assert req.sms_count == 1

    def test_mail_prefix(self) -> None:
        """__MAIL__: sends an e-mail with its subject to e-mail recipients."""
        account = replace(ACCOUNT, senders=())
        req = build(
            _cmd(
                phones="ops@example.com", sender="alex@example.com", text="__MAIL__: Body\nsubj:Hi"
            ),
            account=account,
        )
        assert (req.format, req.subject, req.sender) == (Format.EMAIL, "Hi", "alex@example.com")
        assert req.recipients == ("ops@example.com",)
        assert req.messages[0].text == "Body"

    def test_call_parameters(self) -> None:
        """A call carries its voice and ~~~ param."""
        req = build(_cmd(text="__CALL__: Hello\n~~~\nrepeat=2\nvoice:w3"))
        assert (req.format, req.voice, req.param) == (Format.VOICE, "w3", "repeat=2")
        assert req.messages[0].text == "Hello"

    def test_bot_prefix(self) -> None:
        """__BOT__: keeps the format, sets bot and allows #id recipients."""
        req = build(_cmd(phones="#ops_team,79991234567", text="__BOT__: Hi"))
        assert req.bot
        assert req.format == Format.SMS
        assert req.recipients == ("#ops_team", "+79991234567")

    def test_bot_prefix_refused_without_a_bot_provider(self) -> None:
        """With no provider carrying bot messages, __BOT__ is ERROR = 1, not a plain SMS."""
        with pytest.raises(RequestError) as caught:
            build(_cmd(phones="#ops_team", text="__BOT__: Hi"), bots=False)
        assert caught.value.code == 1

    def test_prefix_format_must_be_carried(self) -> None:
        """A prefix naming a format no provider carries is ERROR = 1."""
        code = error_code(_cmd(text="__VIBER__: hi"), formats=frozenset({Format.SMS}))
        assert code == 1

    def test_list_prefix_applies_to_all(self) -> None:
        """One prefix in a list applies to every message."""
        req = build("alex:pw:::::\n79991234567:__VIBER__: a\n79991234568:b")
        assert req.format == Format.VIBER
        assert [m.text for m in req.messages] == ["a", "b"]


class TestMessages:
    def test_translit_and_split(self) -> None:
        """The text is transliterated, then split into GSM 7-bit parts."""
        req = build(_cmd(translit="1", text="привет " * 30))
        msg = req.messages[0]
        assert msg.text.startswith("privet privet")
        assert msg.split.encoding is Encoding.GSM7
        assert req.sms_count == msg.split.count == 2

    def test_ucs2_without_translit(self) -> None:
        """Cyrillic without transliteration is UCS-2, 70 per part."""
        req = build(_cmd(text="ж" * 71))
        assert req.messages[0].split.encoding is Encoding.UCS2
        assert req.sms_count == 2

    def test_binary_not_transliterated(self) -> None:
        """Binary formats are not transliterated."""
        req = build(_cmd(translit="1", format="4", text="\xe9data"))
        assert req.messages[0].text == "\xe9data"
        assert req.messages[0].split.encoding is Encoding.BINARY

    def test_count_is_parts_times_recipients(self) -> None:
        """n is the sum over messages of parts times recipients."""
        req = build("alex:pw:::::\n79991234567,79991234568:" + "a" * 161 + "\nG1:hi\n")
        assert req.sms_count == 2 * 2 + 1 * 2

    def test_list_test2(self) -> None:
        """Multi-line list mode builds one message per phone line."""
        req = build("alex:pw:77::,,,2::\n79991234567:Line 1\nLine 2\n79991234568:x\\ny")
        assert req.client_id == "77"
        assert [m.text for m in req.messages] == ["Line 1\nLine 2", "x\ny"]

    def test_email_list_subject_for_all(self) -> None:
        """A trailing subj: in an e-mail list applies to all messages."""
        req = build("alex:pw:::,8::\na@example.com:one\nb@example.com:two\nsubj:Hi")
        assert req.subject == "Hi"
        assert len(req.messages) == 2

    def test_voice_only_for_calls(self) -> None:
        """For an SMS the voice:/subj: fields stay empty."""
        req = build(_cmd(text="Body\nvoice:w"))
        assert (req.voice, req.subject, req.param) == (None, None, None)
        assert req.messages[0].text == "Body\nvoice:w"


class TestSenders:
    def test_no_senders_list_allows_any(self) -> None:
        """An account without senders accepts any syntactically valid sender."""
        account = replace(ACCOUNT, senders=(), default_sender="")
        assert build(_cmd(sender="Any One"), account=account).sender == "Any One"
        assert build(_cmd(), account=account).sender == ""

    def test_default_sender_always_allowed(self) -> None:
        """The default sender is allowed even if not in senders."""
        account = replace(ACCOUNT, senders=("Other",), default_sender="Alex")
        assert build(_cmd(sender="Alex"), account=account).sender == "Alex"

    @pytest.mark.parametrize(
        "sender", ["A-b.c_&!?'+", "123456789012345", "+12345678901234", "My Shop"]
    )
    def test_sender_syntax(self, sender: str) -> None:
        """Every sender the SPEC's syntax allows passes the syntax check."""
        account = replace(ACCOUNT, senders=())
        assert build(_cmd(sender=sender), account=account).sender == sender


class TestDenyText:
    def test_bad_pattern_is_config_error(self) -> None:
        """A deny_text pattern that does not compile is a ConfigError, not a crash."""
        account = replace(ACCOUNT, deny_text=("(",))
        with pytest.raises(ConfigError):
            build(_cmd(), account=account)

    def test_subject_checked(self) -> None:
        """deny_text also applies to an e-mail subject."""
        account = replace(ACCOUNT, senders=())
        text = _cmd(format="8", phones="a@example.com", text="hi\nsubj:casino night")
        assert error_code(text, account=account) == 6


_FIELD = st.text(alphabet=st.sampled_from("0123456789+-., abG#@_~xАж"), max_size=14)


class TestProperties:
    @settings(max_examples=300)
    @given(
        st.fixed_dictionaries(
            {
                "id": _FIELD,
                "time": _FIELD,
                "tz": _FIELD,
                "translit": _FIELD,
                "format": _FIELD,
                "sender": _FIELD,
                "test": _FIELD,
                "phones": _FIELD,
            }
        ),
        st.lists(st.tuples(_FIELD, st.text(max_size=40)), max_size=3),
        st.none() | st.text(max_size=10),
        st.sampled_from(["", "__CALL__:", "__MAIL__:", "__BOT__:", "__PING__", "__HLR__"]),
    )
    def test_any_command(
        self,
        fields: dict[str, str],
        entries: list[tuple[str, str]],
        subject: str | None,
        prefix: str,
    ) -> None:
        """Any Command builds a request or raises RequestError, nothing else."""
        phones = fields["phones"]
        command = Command(
            login="alex",
            psw="pw",
            entries=tuple(CommandEntry(phones=p, text=prefix + t) for p, t in entries)
            or (CommandEntry(phones=phones, text=prefix + "hi"),),
            subject=subject,
            id=fields["id"],
            time=fields["time"],
            tz=fields["tz"],
            translit=fields["translit"],
            format=fields["format"],
            sender=fields["sender"],
            test=fields["test"],
        )
        try:
            req = build_request(
                read_fields(command), account=ACCOUNT, now=NOW, region="RU", formats=ALL_FORMATS
            )
        except RequestError as exc:
            assert exc.code in (1, 5, 6, 7, 8)  # noqa: PT017
        else:
            assert req.due >= NOW
            assert req.sms_count >= len(req.recipients)
