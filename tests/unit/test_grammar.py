"""Tests for mailbridge.core.grammar: the SMSC command text split into its fields."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mailbridge.core.grammar import parse_command
from mailbridge.errors import RequestError
from mailbridge.models import Command, CommandEntry

# Every example of seeds/smsc-smtp-email-gateway.txt, with the fields it names:
# (text, login, psw, translit, format, sender, test, phones, mes)
SEED_EXAMPLES = [
    ("alex:123::::79999999999:message", "alex", "123", "", "", "", "", "79999999999", "message"),
    (
        "alex: psw:::1,1, Alex:79999999999: message",
        *("alex", "psw", "1", "1", "Alex", "", "79999999999", "message"),
    ),
    (
        "alex: psw:::1:79999999999: message",
        *("alex", "psw", "1", "", "", "", "79999999999", "message"),
    ),
    (
        "alex: psw:::, 1:79999999999: message",
        *("alex", "psw", "", "1", "", "", "79999999999", "message"),
    ),
    (
        "alex: psw:::, 1, Alex:79999999999: message",
        *("alex", "psw", "", "1", "Alex", "", "79999999999", "message"),
    ),
    (
        "alex: psw:::,1,, 1:79999999999: message",
        *("alex", "psw", "", "1", "", "1", "79999999999", "message"),
    ),
]


class TestSeedExamples:
    @pytest.mark.parametrize(
        ("text", "login", "psw", "translit", "fmt", "sender", "test", "phones", "mes"),
        SEED_EXAMPLES,
        ids=[row[0] for row in SEED_EXAMPLES],
    )
    def test_seed_example(
        self,
        text: str,
        login: str,
        psw: str,
        translit: str,
        fmt: str,
        sender: str,
        test: str,
        phones: str,
        mes: str,
    ) -> None:
        """Each example of the seed parses to the fields it describes."""
        cmd = parse_command(text)
        assert (cmd.login, cmd.psw, cmd.id, cmd.time, cmd.tz) == (login, psw, "", "", "")
        assert (cmd.translit, cmd.format, cmd.sender, cmd.test) == (translit, fmt, sender, test)
        assert cmd.entries == (CommandEntry(phones=phones, text=mes),)
        assert not cmd.list_mode


# (id, text, expected field values)
FIELD_CASES = [
    ("id", "a:p:42:::79991234567:m", {"id": "42"}),
    ("id-string", "a:p: order-7.x ::: 79991234567 :m", {"id": "order-7.x"}),
    ("time-compact", "a:p::0101301200::79991234567:m", {"time": "0101301200", "tz": ""}),
    (
        "time-dotted-tz",
        "a:p::01.01.30 12.00, -2::79991234567:m",
        {"time": "01.01.30 12.00", "tz": "-2"},
    ),
    ("time-window", "a:p::9-18::79991234567:m", {"time": "9-18"}),
    ("time-relative", "a:p::+30,1::79991234567:m", {"time": "+30", "tz": "1"}),
    ("tz-only", "a:p::,2::79991234567:m", {"time": "", "tz": "2"}),
    ("tz-with-comma-kept", "a:p::1,2,3::79991234567:m", {"time": "1", "tz": "2,3"}),
    ("translit-only", "a:p:::2:79991234567:m", {"translit": "2", "format": "", "sender": ""}),
    ("format-only", "a:p:::,1:79991234567:m", {"translit": "", "format": "1"}),
    ("sender", "a:p:::,1,Alex:79991234567:m", {"format": "1", "sender": "Alex"}),
    ("test", "a:p:::,1,,1:79991234567:m", {"sender": "", "test": "1"}),
    (
        "sender-with-space",
        "a:p:::0,0, My Shop ,0:79991234567:m",
        {"sender": "My Shop", "test": "0"},
    ),
    ("extra-commas-go-to-test", "a:p:::,,,1,2:79991234567:m", {"test": "1,2"}),
    ("empty-login-apikey", ":KEY::::79991234567:m", {"login": "", "psw": "KEY"}),
]


class TestFields:
    @pytest.mark.parametrize(
        ("text", "fields"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
    )
    def test_field(self, text: str, fields: dict[str, str]) -> None:
        """A field written in the command comes out stripped, members split at commas."""
        cmd = parse_command(text)
        for name, value in fields.items():
            assert getattr(cmd, name) == value, name

    def test_mes_keeps_colons(self) -> None:
        """Everything after the sixth colon is the message, colons included."""
        cmd = parse_command("a:p::::79991234567:Disk: 95% at 12:30")
        assert cmd.entries[0].text == "Disk: 95% at 12:30"

    def test_mes_keeps_inner_line_breaks_as_lf(self) -> None:
        """CRLF of the mail becomes LF; inner line breaks stay, the ends are stripped."""
        cmd = parse_command("\r\n\r\na:p::::79991234567:\r\n Line 1\r\n\r\nLine 2 \r\n\r\n")
        assert cmd.entries[0].text == "Line 1\n\nLine 2"

    def test_zabbix_body(self) -> None:
        """A whole multi-line body after the sixth colon is the message."""
        body = "zbx:secret::::79991234567:PROBLEM: CPU high\nHost: db1\nSeverity: High\n\n"
        cmd = parse_command(body)
        assert cmd.entries[0].text == "PROBLEM: CPU high\nHost: db1\nSeverity: High"

    def test_phones_field_kept_raw(self) -> None:
        """The phones field is only stripped; phones.py reads it."""
        cmd = parse_command("a:p:::: 7999 123-45-67; G1 ,#chat :m")
        assert cmd.entries[0].phones == "7999 123-45-67; G1 ,#chat"

    def test_empty_message_parses(self) -> None:
        """An empty <mes> is the request's problem (HLR and ping need none)."""
        assert parse_command("a:p::::79991234567:").entries[0].text == ""

    def test_prefix_stays_in_text(self) -> None:
        """Prefixes are left to request.py, which knows the formats."""
        assert parse_command("a:p::::79991234567:__VIBER__: hi").entries[0].text == "__VIBER__: hi"


BAD_COMMANDS = [
    ("empty", ""),
    ("blank", " \n\t\n"),
    ("no-colon", "hello world"),
    ("five-colons", "alex:123:::79999999999"),
    ("four-colons", "alex:123:::message"),
    ("list-line-without-colon", "a:p:::::\n79991234567 hello"),
    ("list-text-without-phones", "a:p:::::message"),
    ("test2-first-line-not-phones", "a:p:::,,,2::\nhello\n79991234567:x"),
]


class TestBadCommands:
    @pytest.mark.parametrize("text", [c[1] for c in BAD_COMMANDS], ids=[c[0] for c in BAD_COMMANDS])
    def test_bad_command(self, text: str) -> None:
        """Text the grammar cannot read is ERROR = 1."""
        with pytest.raises(RequestError) as info:
            parse_command(text)
        assert info.value.code == 1


class TestListMode:
    def test_lines(self) -> None:
        """Each line of the list is <phones>:<mes>, sharing the header fields."""
        cmd = parse_command(
            "a:p:7::,,Alex::\n79991234567:First\n79991234568,79991234569:Second: yes\n"
        )
        assert cmd.list_mode
        assert cmd.id == "7"
        assert cmd.sender == "Alex"
        assert cmd.entries == (
            CommandEntry(phones="79991234567", text="First"),
            CommandEntry(phones="79991234568,79991234569", text="Second: yes"),
        )

    def test_list_on_same_line(self) -> None:
        """The list may start right after the sixth colon."""
        cmd = parse_command("a:p:::::79991234567:hi\n79991234568:yo")
        assert [e.phones for e in cmd.entries] == ["79991234567", "79991234568"]

    def test_backslash_n_is_line_break(self) -> None:
        r"""``\n`` inside a list message is a line break."""
        cmd = parse_command("a:p:::::\n79991234567:one\\ntwo")
        assert cmd.entries[0].text == "one\ntwo"

    def test_blank_lines_skipped(self) -> None:
        """Blank lines between list lines are ignored."""
        cmd = parse_command("a:p:::::\n\n79991234567:a\n   \n\n79991234568:b\n\n")
        assert len(cmd.entries) == 2

    def test_empty_list(self) -> None:
        """A list with no lines parses with no entries; the request answers 7."""
        cmd = parse_command("a:p:::::\n\n")
        assert cmd.list_mode
        assert cmd.entries == ()

    def test_test2_continuation(self) -> None:
        """With test=2 a line that does not start with phones continues the message."""
        text = (
            "a:p:::,,,2::\n"
            "79991234567:PROBLEM: disk\n"
            "Host: db1\n"
            "10:30 restart planned\n"
            "\n"
            "Regards\n"
            "+7 (999) 123-45-68, G2:Second\n"
            "line\n"
        )
        cmd = parse_command(text)
        assert cmd.entries == (
            CommandEntry(
                phones="79991234567",
                text="PROBLEM: disk\nHost: db1\n10:30 restart planned\n\nRegards",
            ),
            CommandEntry(phones="+7 (999) 123-45-68, G2", text="Second\nline"),
        )

    def test_continuation_needs_test2(self) -> None:
        """Without test=2 a continuation line is an error."""
        with pytest.raises(RequestError):
            parse_command("a:p:::,,,1::\n79991234567:PROBLEM\nHost db1 down")

    @pytest.mark.parametrize(
        "line",
        ["G1:x", "#chat_01:x", "#-1001234:x", "ops@example.com:x", "79991234567 ; 79991234568:x"],
    )
    def test_test2_new_entry_kinds(self, line: str) -> None:
        """Groups, Telegram ids and e-mail addresses start a new message too."""
        cmd = parse_command(f"a:p:::,,,2::\n79991234567:first\n{line}")
        assert len(cmd.entries) == 2

    @pytest.mark.parametrize(
        "line",
        [" " * 50_000, "79991234567" + " " * 50_000 + "x", "1 " * 25_000, "+" + "\t" * 50_000],
        ids=["blanks", "number-then-blanks", "spaced-digits", "plus-then-tabs"],
    )
    def test_test2_long_lines(self, line: str) -> None:
        """Long lines of blanks and digits are read in linear time (once quadratic)."""
        cmd = parse_command(f"a:p:::,,,2::\n79991234567:first\n{line}")
        assert len(cmd.entries) == 1


class TestParameters:
    def test_subject_for_email_format(self) -> None:
        """With format 8 a last line subj:<subject> is the subject."""
        cmd = parse_command("a:p:::,8:ops@example.com:Body\nmore\nsubj: Alert \n")
        assert cmd.subject == "Alert"
        assert cmd.entries[0].text == "Body\nmore"

    def test_subject_with_mail_prefix(self) -> None:
        """__MAIL__: makes subj: a parameter although the format field is empty."""
        cmd = parse_command("a:p::::ops@example.com:__MAIL__: Body\nSUBJ:Alert")
        assert cmd.subject == "Alert"
        assert cmd.entries[0].text == "__MAIL__: Body"

    def test_subject_line_is_text_for_sms(self) -> None:
        """For an ordinary SMS a subj: line is just text."""
        cmd = parse_command("a:p::::79991234567:Body\nsubj:Alert")
        assert cmd.subject is None
        assert cmd.entries[0].text == "Body\nsubj:Alert"

    def test_voice_and_param(self) -> None:
        """For a call, voice: is the last line and text after ~~~ is param."""
        cmd = parse_command("a:p::::79991234567:__CALL__: Hello\n~~~\nrepeat=2\nvoice:m2")
        assert cmd.voice == "m2"
        assert cmd.param == "repeat=2"
        assert cmd.entries[0].text == "__CALL__: Hello"

    def test_voice_format_field(self) -> None:
        """Format 9 in the field works like __CALL__:."""
        cmd = parse_command("a:p:::,9:79991234567:Hello\nvoice:w")
        assert (cmd.voice, cmd.entries[0].text) == ("w", "Hello")

    def test_list_parameters_apply_to_all(self) -> None:
        """In list mode a trailing subj: line is taken off the list."""
        cmd = parse_command("a:p:::,8::\na@example.com:one\nb@example.com:two\nsubj:Hi\n")
        assert cmd.subject == "Hi"
        assert [e.text for e in cmd.entries] == ["one", "two"]

    def test_list_tilde_param(self) -> None:
        """A ~~~ param written with \\n in a list line is taken off the text."""
        cmd = parse_command("a:p:::,9::\n79991234567:Hi\\n~~~\\nrepeat=1\nvoice:w")
        assert (cmd.entries[0].text, cmd.param, cmd.voice) == ("Hi", "repeat=1", "w")

    def test_list_different_params(self) -> None:
        """Different ~~~ params in one list are an error."""
        with pytest.raises(RequestError):
            parse_command("a:p:::,9::\n79991234567:a\\n~~~\\nx=1\n79991234568:b\\n~~~\\nx=2")


def _outcome(text: str) -> Command | int:
    """The parsed command, or the number of the RequestError raised."""
    try:
        return parse_command(text)
    except RequestError as exc:
        return exc.code


_FIELD_CHARS = st.text(alphabet=st.sampled_from("ab 1,.:-+\n\r\\~_#@G;"), max_size=60)


class TestNeverCrashes:
    @given(st.text(max_size=300))
    @example("::::::")
    @example("a:p:::,,,2::\n\n:\n~~~\nsubj:")
    def test_any_text(self, text: str) -> None:
        """Any text parses to a Command or raises RequestError(1), nothing else."""
        outcome = _outcome(text)
        assert outcome == 1 or isinstance(outcome, Command)

    @given(_FIELD_CHARS)
    def test_grammar_shaped_text(self, tail: str) -> None:
        """Text made of the grammar's own separators never escapes as another error."""
        for head in ("a:p:::,9::", "a:p:::,8,,2::", "a:p::::7999:"):
            outcome = _outcome(head + tail)
            assert outcome == 1 or isinstance(outcome, Command)
