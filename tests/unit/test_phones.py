"""Tests for mailbridge.core.phones: phone numbers, groups, Telegram ids and e-mail recipients."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.phones import expand_recipients, is_email, normalize_number
from mailbridge.errors import RequestError
from mailbridge.models import Format

# (id, raw, region, E.164)
GOOD_NUMBERS = [
    ("ru-8-trunk", "89991234567", "RU", "+79991234567"),
    ("ru-national", "9991234567", "RU", "+79991234567"),
    ("ru-country-code", "79991234567", "RU", "+79991234567"),
    ("ru-plus", "+79991234567", "RU", "+79991234567"),
    ("ru-moscow-landline", "84951234567", "RU", "+74951234567"),
    ("spaces-dashes-parens", "+7 (999) 123-45-67", "RU", "+79991234567"),
    ("tab-inside", "8\t999 1234567", "RU", "+79991234567"),
    ("lower-case-region", "89991234567", "ru", "+79991234567"),
    ("foreign-plus", "+44 20 7183 8750", "RU", "+442071838750"),
    ("foreign-without-plus", "442071838750", "RU", "+442071838750"),
    ("us-without-plus-in-ru", "12025550123", "RU", "+12025550123"),
    ("us-national-in-us", "(202) 555-0123", "US", "+12025550123"),
    ("ua-without-plus-in-ru", "380501234567", "RU", "+380501234567"),
]

# (id, raw, region)
BAD_NUMBERS = [
    ("empty", "", "RU"),
    ("too-short-plus", "+7999123456", "RU"),
    ("too-long-plus", "+799912345678", "RU"),
    ("plus-not-corrected", "+89991234567", "RU"),
    ("letters", "8999CALLME1", "RU"),
    ("vanity", "+1-800-FLOWERS", "RU"),
    ("double-plus", "++79991234567", "RU"),
    ("plus-inside", "7999+1234567", "RU"),
    ("dots", "8.999.123.45.67", "RU"),
    ("too-short", "12", "RU"),
    ("eighteen-digits", "1" * 18, "RU"),
    ("invalid-anywhere", "99912345678", "RU"),
    ("fullwidth-digits", "８９９９１２３４５６７", "RU"),
    ("unknown-region-national", "9991234567", "ZZ"),
]


class TestNormalizeNumber:
    @pytest.mark.parametrize(
        ("raw", "region", "e164"),
        [c[1:] for c in GOOD_NUMBERS],
        ids=[c[0] for c in GOOD_NUMBERS],
    )
    def test_good(self, raw: str, region: str, e164: str) -> None:
        """Written forms of a valid number become its E.164 form."""
        assert normalize_number(raw, region=region) == e164

    @pytest.mark.parametrize(
        ("raw", "region"), [c[1:] for c in BAD_NUMBERS], ids=[c[0] for c in BAD_NUMBERS]
    )
    def test_bad(self, raw: str, region: str) -> None:
        """Anything that is not a valid number is ERROR = 7."""
        with pytest.raises(RequestError) as info:
            normalize_number(raw, region=region)
        assert info.value.code == 7


GROUPS = {1: ("+79990000001", "89990000002"), 2: ("+79990000001",), 3: ()}

# (id, field, fmt, bot, recipients)
GOOD_FIELDS = [
    ("single", "79991234567", Format.SMS, False, ("+79991234567",)),
    ("comma", "79991234567,79991234568", Format.SMS, False, ("+79991234567", "+79991234568")),
    ("semicolon", "79991234567;79991234568", Format.SMS, False, ("+79991234567", "+79991234568")),
    (
        "blanks",
        " 79991234567 ; 8 999 123 45 68 ",
        Format.SMS,
        False,
        ("+79991234567", "+79991234568"),
    ),
    ("empty-entries", ",79991234567,,;", Format.SMS, False, ("+79991234567",)),
    ("dedup", "89991234567,+79991234567,9991234567", Format.SMS, False, ("+79991234567",)),
    ("group", "G1", Format.SMS, False, ("+79990000001", "+79990000002")),
    ("group-lower", "g2", Format.SMS, False, ("+79990000001",)),
    ("group-dedup", "G2,G1,79990000001", Format.SMS, False, ("+79990000001", "+79990000002")),
    ("empty-group-with-number", "G3,79991234567", Format.SMS, False, ("+79991234567",)),
    ("telegram-id", "#123456789", Format.SMS, True, ("#123456789",)),
    ("telegram-name", "#ops_team", Format.SMS, True, ("#ops_team",)),
    ("telegram-chat", "#-1001234567890", Format.SMS, True, ("#-1001234567890",)),
    (
        "telegram-and-phone",
        "#ops_team,89991234567",
        Format.SMS,
        True,
        ("#ops_team", "+79991234567"),
    ),
    ("email", "ops@example.com", Format.EMAIL, False, ("ops@example.com",)),
    (
        "email-domain-case",
        "Ops@Example.COM;ops@example.com",
        Format.EMAIL,
        False,
        ("Ops@example.com", "ops@example.com"),
    ),
    (
        "email-plus-tag",
        "a.b+tag@mail.example.org",
        Format.EMAIL,
        False,
        ("a.b+tag@mail.example.org",),
    ),
    ("viber-phone", "79991234567", Format.VIBER, False, ("+79991234567",)),
]

# (id, field, fmt, bot)
BAD_FIELDS = [
    ("empty", "", Format.SMS, False),
    ("only-separators", " , ; ", Format.SMS, False),
    ("one-bad-rejects-all", "79991234567,12345", Format.SMS, False),
    ("unknown-group", "G9", Format.SMS, False),
    ("group-zero", "G0", Format.SMS, False),
    ("empty-group-only", "G3", Format.SMS, False),
    ("group-without-number", "G", Format.SMS, False),
    ("telegram-without-bot", "#123456789", Format.SMS, False),
    ("telegram-bad", "#", Format.SMS, True),
    ("telegram-spaces", "#a b c", Format.SMS, True),
    ("email-in-sms", "ops@example.com", Format.SMS, False),
    ("phone-in-email", "79991234567", Format.EMAIL, False),
    ("email-no-tld", "ops@localhost", Format.EMAIL, False),
    ("email-no-at", "ops.example.com", Format.EMAIL, False),
    ("email-two-at", "a@b@example.com", Format.EMAIL, False),
    ("email-double-dot", "a..b@example.com", Format.EMAIL, False),
    ("email-header-injection", "a@example.com\r\nBcc: x@example.com", Format.EMAIL, False),
    ("group-of-phones-in-email", "G1", Format.EMAIL, False),
]


class TestExpandRecipients:
    @pytest.mark.parametrize(
        ("field", "fmt", "bot", "expected"),
        [c[1:] for c in GOOD_FIELDS],
        ids=[c[0] for c in GOOD_FIELDS],
    )
    def test_good(self, field: str, fmt: Format, bot: bool, expected: tuple[str, ...]) -> None:
        """A phones field expands to its recipients, deduplicated in order."""
        got = expand_recipients(field, region="RU", groups=GROUPS, fmt=fmt, bot=bot)
        assert got == expected

    @pytest.mark.parametrize(
        ("field", "fmt", "bot"), [c[1:] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS]
    )
    def test_bad(self, field: str, fmt: Format, bot: bool) -> None:
        """Any invalid entry, or no recipient at all, rejects the field with ERROR = 7."""
        with pytest.raises(RequestError) as info:
            expand_recipients(field, region="RU", groups=GROUPS, fmt=fmt, bot=bot)
        assert info.value.code == 7

    def test_bot_defaults_off(self) -> None:
        """Without the bot keyword a Telegram id is refused."""
        with pytest.raises(RequestError):
            expand_recipients("#123456789", region="RU", groups={}, fmt=Format.SMS)


class TestIsEmail:
    @pytest.mark.parametrize(
        ("value", "ok"),
        [
            ("a@example.com", True),
            ("first.last@sub.example.co.uk", True),
            ("a@-example.com", False),
            (".a@example.com", False),
            ("a@example..com", False),
            ("a" * 250 + "@example.com", False),
            ("", False),
        ],
    )
    def test_is_email(self, value: str, ok: bool) -> None:
        """Only plain dot-atom addresses with a dotted domain pass."""
        assert is_email(value) is ok


class TestProperties:
    @given(st.text(alphabet=st.sampled_from("+0123456789 -()#Gg,;@.a"), max_size=60))
    def test_any_field(self, field: str) -> None:
        """Any field expands to E.164/#id recipients or raises RequestError(7)."""
        try:
            got = expand_recipients(field, region="RU", groups=GROUPS, fmt=Format.SMS, bot=True)
        except RequestError as exc:
            code = exc.code
        else:
            code = 7
            assert got
            assert len(set(got)) == len(got)
            assert all(r.startswith(("+", "#")) for r in got)
        assert code == 7

    @given(st.text(max_size=40))
    def test_any_number(self, raw: str) -> None:
        """Any text is a valid E.164 number or RequestError(7), and normalising is idempotent."""
        try:
            e164 = normalize_number(raw, region="RU")
        except RequestError as exc:
            assert exc.code == 7  # noqa: PT017
        else:
            assert normalize_number(e164, region="RU") == e164

    @given(st.from_regex(r"9\d{9}", fullmatch=True))
    def test_russian_mobile_forms(self, national: str) -> None:
        """The three RU spellings of a mobile number agree."""
        try:
            expected = normalize_number("+7" + national, region="RU")
        except RequestError:
            return
        for raw in ("8" + national, national, "7" + national):
            assert normalize_number(raw, region="RU") == expected
