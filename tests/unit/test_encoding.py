"""Tests for mailbridge.core.encoding: GSM 7-bit length and SMS part splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    InvalidBinaryError,
    binary_length,
    gsm7_length,
    split_text,
    truncate_to_parts,
    utf16_length,
)
from mailbridge.errors import RequestError
from mailbridge.models import Encoding, Format

# --- an independent reference encoder ---------------------------------------
# GSM 03.38 written as code -> character: ASCII where the alphabet agrees with
# ASCII, and every other position spelled out by its code.

_REF_BASIC: dict[str, int] = {
    chr(code): code
    for lo, hi in ((0x20, 0x23), (0x25, 0x3F), (0x41, 0x5A), (0x61, 0x7A))
    for code in range(lo, hi + 1)
}
_REF_BASIC.update(
    {
        "@": 0x00, "£": 0x01, "$": 0x02, "¥": 0x03, "è": 0x04, "é": 0x05, "ù": 0x06,
        "ì": 0x07, "ò": 0x08, "Ç": 0x09, "\n": 0x0A, "Ø": 0x0B, "ø": 0x0C, "\r": 0x0D,
        "Å": 0x0E, "å": 0x0F, "Δ": 0x10, "_": 0x11, "Φ": 0x12, "Γ": 0x13, "Λ": 0x14,
        "Ω": 0x15, "Π": 0x16, "Ψ": 0x17, "Σ": 0x18, "Θ": 0x19, "Ξ": 0x1A, "Æ": 0x1C,
        "æ": 0x1D, "ß": 0x1E, "É": 0x1F, "¤": 0x24, "¡": 0x40, "Ä": 0x5B, "Ö": 0x5C,
        "Ñ": 0x5D, "Ü": 0x5E, "§": 0x5F, "¿": 0x60, "ä": 0x7B, "ö": 0x7C, "ñ": 0x7D,
        "ü": 0x7E, "à": 0x7F,
    }
)  # fmt: skip
_REF_EXTENSION: dict[str, int] = {
    "\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}  # fmt: skip
_ESC = 0x1B


def ref_septets(text: str) -> list[int] | None:
    """The septets of ``text``, escape septets included, or None if not GSM."""
    out: list[int] = []
    for ch in text:
        if ch in _REF_BASIC:
            out.append(_REF_BASIC[ch])
        elif ch in _REF_EXTENSION:
            out += [_ESC, _REF_EXTENSION[ch]]
        else:
            return None
    return out


def ref_gsm_parts(septets: list[int]) -> int:
    """Parts of a septet list: 160 alone, else 153 each, never ending on an escape."""
    if len(septets) <= 160:
        return 1
    count, start = 0, 0
    while start < len(septets):
        end = min(start + 153, len(septets))
        if septets[end - 1] == _ESC:
            end -= 1
        count += 1
        start = end
    return count


def ref_ucs2_parts(text: str) -> int:
    """Parts of UTF-16BE bytes: 140 alone, else 134 each, never ending on a high surrogate."""
    data = text.encode("utf-16-be")
    if len(data) <= 140:
        return 1
    count, start = 0, 0
    while start < len(data):
        end = min(start + 134, len(data))
        if 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2
        count += 1
        start = end
    return count


def ref_count(text: str) -> tuple[Encoding, int]:
    septets = ref_septets(text)
    if septets is not None:
        return Encoding.GSM7, ref_gsm_parts(septets)
    return Encoding.UCS2, ref_ucs2_parts(text)


def ref_size(part: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        septets = ref_septets(part)
        assert septets is not None
        return len(septets)
    return len(part.encode("utf-16-be")) // 2


# --- strategies ---------------------------------------------------------------

GSM_CHARS = "".join(sorted(_REF_BASIC)) + "".join(sorted(_REF_EXTENSION))
CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
EMOJI = "😀🚀👍🎉𝄞"

gsm_text = st.text(alphabet=GSM_CHARS, min_size=120, max_size=700)
extension_heavy = st.text(alphabet="a{€\f|", min_size=60, max_size=500)
cyrillic_text = st.text(alphabet=CYRILLIC + " .,!", min_size=50, max_size=400)
emoji_mix = st.text(alphabet=CYRILLIC[:10] + EMOJI + "ab {", min_size=50, max_size=400)
any_text = st.one_of(st.text(max_size=200), gsm_text, extension_heavy, cyrillic_text, emoji_mix)


class TestAlphabet:
    def test_basic_table_matches_reference(self) -> None:
        """The module's basic alphabet is the 127 characters of GSM 03.38."""
        assert set(_REF_BASIC) == GSM7_BASIC
        assert len(GSM7_BASIC) == 127

    def test_extension_table_matches_reference(self) -> None:
        """The extension table is form feed and ^{}\\[~]|€."""
        assert set(_REF_EXTENSION) == GSM7_EXTENSION


class TestGsm7Length:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", 0),
            ("abc", 3),
            ("Hello, world!", 13),
            ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", 42),
            ("line\r\nbreak", 11),
            ("€", 2),
            ("\f", 2),
            ("^{}\\[~]|€\f", 20),
            ("a{b", 4),
            ("`", None),
            ("\t", None),
            ("\x1b", None),
            ("\x00", None),
            ("ç", None),
            ("привет", None),
            ("А", None),  # Cyrillic capital A
            ("😀", None),
            ("price 5€ ok", 12),
        ],
    )
    def test_table(self, text: str, expected: int | None) -> None:
        """Septet counts for a table of texts, None when the alphabet lacks a character."""
        assert gsm7_length(text) == expected

    @given(any_text)
    def test_agrees_with_reference(self, text: str) -> None:
        """gsm7_length is the length of the reference septet encoding."""
        septets = ref_septets(text)
        assert gsm7_length(text) == (None if septets is None else len(septets))


class TestUtf16Length:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [("", 0), ("abc", 3), ("привет", 6), ("😀", 2), ("a😀я", 4)],
    )
    def test_table(self, text: str, expected: int) -> None:
        """UTF-16 units: astral characters count two."""
        assert utf16_length(text) == expected


class TestSplitText:
    @pytest.mark.parametrize(
        ("text", "encoding", "lengths"),
        [
            ("", Encoding.GSM7, [0]),
            ("a" * 160, Encoding.GSM7, [160]),
            ("a" * 161, Encoding.GSM7, [153, 8]),
            ("a" * 306, Encoding.GSM7, [153, 153]),
            ("a" * 307, Encoding.GSM7, [153, 153, 1]),
            ("{" * 80, Encoding.GSM7, [80]),
            ("{" * 81, Encoding.GSM7, [76, 5]),
            ("a" * 158 + "€", Encoding.GSM7, [159]),
            ("a" * 159 + "€", Encoding.GSM7, [153, 7]),
            ("a" * 158 + "\f", Encoding.GSM7, [159]),
            ("a" * 159 + "\f", Encoding.GSM7, [153, 7]),
            ("a" * 152 + "{" + "a" * 152, Encoding.GSM7, [152, 152, 1]),
            ("a" * 151 + "{" + "a" * 152, Encoding.GSM7, [152, 152]),
            ("a" * 153 + "{" + "a" * 10, Encoding.GSM7, [153, 11]),
            ("я" * 70, Encoding.UCS2, [70]),
            ("я" * 71, Encoding.UCS2, [67, 4]),
            ("я" * 134, Encoding.UCS2, [67, 67]),
            ("я" * 135, Encoding.UCS2, [67, 67, 1]),
            ("a" * 159 + "я", Encoding.UCS2, [67, 67, 26]),
            ("a\tb", Encoding.UCS2, [3]),
            ("`" * 71, Encoding.UCS2, [67, 4]),
            ("😀" * 35, Encoding.UCS2, [35]),
            ("😀" * 36, Encoding.UCS2, [33, 3]),
            ("я" * 66 + "😀" + "я" * 10, Encoding.UCS2, [66, 11]),
            ("я" * 65 + "😀" + "я" * 10, Encoding.UCS2, [66, 10]),
        ],
    )
    def test_table(self, text: str, encoding: Encoding, lengths: list[int]) -> None:
        """Encoding and part lengths (in characters) at the 160/153 and 70/67 boundaries."""
        split = split_text(text)
        assert split.encoding is encoding
        assert [len(p) for p in split.parts] == lengths
        assert split.count == len(lengths)
        assert "".join(split.parts) == text

    def test_escape_pair_not_split_at_boundary(self) -> None:
        """152 + '{' + 152 characters is 3 parts; the brace opens the second part."""
        split = split_text("a" * 152 + "{" + "b" * 152)
        assert split.count == 3
        assert split.parts[1].startswith("{")

    def test_surrogate_pair_not_split_at_boundary(self) -> None:
        """An emoji that would straddle unit 67 starts the next part whole."""
        split = split_text("я" * 66 + "😀" + "я" * 10)
        assert split.parts[1].startswith("😀")

    @pytest.mark.parametrize("fmt", [Format.SMS, Format.FLASH, Format.VIBER, Format.HLR])
    def test_text_formats_count_as_text(self, fmt: Format) -> None:
        """Every format but 4 and 5 is counted as GSM/UCS-2 text."""
        assert split_text("a" * 161, fmt).count == 2

    @given(any_text)
    def test_join_gives_text_back(self, text: str) -> None:
        """Joining the parts gives the text back."""
        assert "".join(split_text(text).parts) == text

    @given(any_text)
    def test_count_agrees_with_reference(self, text: str) -> None:
        """Encoding and part count agree with the reference septet/UTF-16 encoder."""
        split = split_text(text)
        assert (split.encoding, split.count) == ref_count(text)

    @given(any_text)
    def test_each_part_fits_and_is_greedy(self, text: str) -> None:
        """Each part fits its limit, and no part but the last could take one more character."""
        split = split_text(text)
        if split.count == 1:
            single = 160 if split.encoding is Encoding.GSM7 else 70
            assert ref_size(text, split.encoding) <= single
            return
        limit = 153 if split.encoding is Encoding.GSM7 else 67
        for part, following in zip(split.parts, split.parts[1:], strict=False):
            assert part
            assert ref_size(part, split.encoding) <= limit
            assert ref_size(part + following[0], split.encoding) > limit
        assert 0 < ref_size(split.parts[-1], split.encoding) <= limit


class TestBinary:
    @pytest.mark.parametrize(
        ("text", "fmt", "lengths"),
        [
            ("", Format.BINARY, [0]),
            ("\x00" * 140, Format.BINARY, [140]),
            ("\xff" * 141, Format.BINARY, [134, 7]),
            ("\x80" * 268, Format.BINARY, [134, 134]),
            ("", Format.BINARY_HEX, [0]),
            ("00" * 140, Format.BINARY_HEX, [280]),
            ("0A" * 141, Format.BINARY_HEX, [268, 14]),
            ("ff" * 268 + "\n", Format.BINARY_HEX, [268, 269]),
            ("0A\n" * 141, Format.BINARY_HEX, [401, 22]),
        ],
    )
    def test_table(self, text: str, fmt: Format, lengths: list[int]) -> None:
        """Binary parts hold 140 bytes alone, else 134; hex counts two digits a byte."""
        split = split_text(text, fmt)
        assert split.encoding is Encoding.BINARY
        assert [len(p) for p in split.parts] == lengths
        assert "".join(split.parts) == text

    @pytest.mark.parametrize(
        ("text", "fmt"),
        [
            ("Ā", Format.BINARY),
            ("абв", Format.BINARY),
            ("0g", Format.BINARY_HEX),
            ("000", Format.BINARY_HEX),
            ("0x00", Format.BINARY_HEX),
            ("дд", Format.BINARY_HEX),
        ],
    )
    def test_invalid_binary(self, text: str, fmt: Format) -> None:
        """A binary text that is not Latin-1 or not hex is ERROR = 1, also a ValueError."""
        with pytest.raises(InvalidBinaryError) as info:
            split_text(text, fmt)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, RequestError)
        assert info.value.code == 1

    @pytest.mark.parametrize(
        ("text", "expected"), [("", 0), ("00", 1), ("de AD\r\nbe EF", 4), ("0 0", 1)]
    )
    def test_hex_length(self, text: str, expected: int) -> None:
        """Hex length ignores whitespace and case."""
        assert binary_length(text, Format.BINARY_HEX) == expected

    def test_binary_length_rejects_text_format(self) -> None:
        """binary_length is only for formats 4 and 5."""
        with pytest.raises(ValueError, match="not binary"):
            binary_length("abc", Format.SMS)

    @given(st.binary(max_size=600), st.sampled_from(["", "\n", " "]))
    def test_hex_parts(self, data: bytes, sep: str) -> None:
        """Hex parts join back, and each holds at most 134 bytes when there are several."""
        text = sep.join(data.hex()[i : i + 2] for i in range(0, 2 * len(data), 2))
        split = split_text(text, Format.BINARY_HEX)
        assert "".join(split.parts) == text
        expected = 1 if len(data) <= 140 else -(-len(data) // 134)
        assert split.count == expected
        if split.count > 1:
            assert all(binary_length(p, Format.BINARY_HEX) <= 134 for p in split.parts)

    @given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=600))
    def test_latin1_parts(self, text: str) -> None:
        """Format 4 counts one byte a character: 140 alone, else 134 a part."""
        split = split_text(text, Format.BINARY)
        assert "".join(split.parts) == text
        assert split.count == (1 if len(text) <= 140 else -(-len(text) // 134))


class TestTruncateToParts:
    @pytest.mark.parametrize(
        ("text", "max_parts", "expected"),
        [
            ("short", 1, "short"),
            ("a" * 160, 1, "a" * 160),
            ("a" * 161, 1, "a" * 157 + "..."),
            ("a" * 400, 2, "a" * 303 + "..."),
            ("я" * 71, 1, "я" * 67 + "..."),
            ("a" * 200 + "я" * 10, 1, "a" * 157 + "..."),
            ("a" * 155 + "     bbbbb", 1, "a" * 155 + "..."),
        ],
    )
    def test_table(self, text: str, max_parts: int, expected: str) -> None:
        """A text over max_parts is cut to fit with '...' counted inside."""
        assert truncate_to_parts(text, max_parts) == expected

    def test_zero_parts_rejected(self) -> None:
        """max_parts below 1 is a ValueError."""
        with pytest.raises(ValueError, match="at least 1"):
            truncate_to_parts("abc", 0)

    @given(st.text(alphabet="ab{€я😀", max_size=600), st.integers(min_value=1, max_value=4))
    def test_fits_and_is_longest(self, text: str, max_parts: int) -> None:
        """The result fits, and one more character of the text would not."""
        result = truncate_to_parts(text, max_parts)
        assert split_text(result).count <= max_parts
        if result != text:
            prefix = result.removesuffix("...")
            assert text.startswith(prefix)
            assert split_text(text[: len(prefix) + 1] + "...").count > max_parts
