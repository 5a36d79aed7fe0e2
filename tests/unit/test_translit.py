"""Tests for mailbridge.core.translit: SMSC translit modes 0, 1 and 2."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.encoding import gsm7_length
from mailbridge.core.translit import LATIN, LOOKALIKE, transliterate

RUSSIAN_LOWER = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
RUSSIAN_UPPER = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"

# Mode 1: (lower, its Latin, upper alone, upper among capitals)
LATIN_CASES = [
    ("а", "a", "A", "A"),
    ("б", "b", "B", "B"),
    ("в", "v", "V", "V"),
    ("г", "g", "G", "G"),
    ("д", "d", "D", "D"),
    ("е", "e", "E", "E"),
    ("ё", "yo", "Yo", "YO"),
    ("ж", "zh", "Zh", "ZH"),
    ("з", "z", "Z", "Z"),
    ("и", "i", "I", "I"),
    ("й", "j", "J", "J"),
    ("к", "k", "K", "K"),
    ("л", "l", "L", "L"),
    ("м", "m", "M", "M"),
    ("н", "n", "N", "N"),
    ("о", "o", "O", "O"),
    ("п", "p", "P", "P"),
    ("р", "r", "R", "R"),
    ("с", "s", "S", "S"),
    ("т", "t", "T", "T"),
    ("у", "u", "U", "U"),
    ("ф", "f", "F", "F"),
    ("х", "h", "H", "H"),
    ("ц", "ts", "Ts", "TS"),
    ("ч", "ch", "Ch", "CH"),
    ("ш", "sh", "Sh", "SH"),
    ("щ", "sch", "Sch", "SCH"),
    ("ъ", '"', '"', '"'),
    ("ы", "y", "Y", "Y"),
    ("ь", "'", "'", "'"),
    ("э", "e", "E", "E"),
    ("ю", "yu", "Yu", "YU"),
    ("я", "ya", "Ya", "YA"),
]

# Mode 2: (letter, look-alike) for all 33 capitals and 33 small letters
LOOKALIKE_CASES = [
    ("А", "A"), ("Б", "6"), ("В", "B"), ("Г", "r"), ("Д", "D"), ("Е", "E"), ("Ё", "E"),
    ("Ж", ">|<"), ("З", "3"), ("И", "U"), ("Й", "U'"), ("К", "K"), ("Л", "/I"), ("М", "M"),
    ("Н", "H"), ("О", "O"), ("П", "n"), ("Р", "P"), ("С", "C"), ("Т", "T"), ("У", "Y"),
    ("Ф", "qp"), ("Х", "X"), ("Ц", "U,"), ("Ч", "4"), ("Ш", "W"), ("Щ", "W,"), ("Ъ", "'b"),
    ("Ы", "bI"), ("Ь", "b"), ("Э", "-)"), ("Ю", "IO"), ("Я", "9I"),
    ("а", "a"), ("б", "6"), ("в", "B"), ("г", "r"), ("д", "g"), ("е", "e"), ("ё", "e"),
    ("ж", ">|<"), ("з", "3"), ("и", "u"), ("й", "u'"), ("к", "k"), ("л", "/I"), ("м", "M"),
    ("н", "H"), ("о", "o"), ("п", "n"), ("р", "p"), ("с", "c"), ("т", "m"), ("у", "y"),
    ("ф", "qp"), ("х", "x"), ("ц", "u,"), ("ч", "4"), ("ш", "w"), ("щ", "w,"), ("ъ", "'b"),
    ("ы", "bI"), ("ь", "b"), ("э", "-)"), ("ю", "IO"), ("я", "9I"),
]  # fmt: skip

EXTRA_LATIN = [
    ("і", "i"), ("ї", "yi"), ("є", "ye"), ("ґ", "g"), ("ў", "u"),
    ("І", "I"), ("Ї", "Yi"), ("Є", "Ye"), ("Ґ", "G"), ("Ў", "U"),
]  # fmt: skip
EXTRA_LOOKALIKE = [
    ("і", "i"), ("ї", "i"), ("є", "e"), ("ґ", "r"), ("ў", "y"),
    ("І", "I"), ("Ї", "I"), ("Є", "E"), ("Ґ", "r"), ("Ў", "Y"),
]  # fmt: skip

non_cyrillic = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]).filter(
        lambda ch: not "\u0400" <= ch <= "\u052f"
    ),
    max_size=200,
)


class TestTables:
    def test_cases_cover_the_alphabet(self) -> None:
        """The tables below cover all 33 letters, upper and lower case."""
        assert "".join(c[0] for c in LATIN_CASES) == RUSSIAN_LOWER
        assert "".join(c[0] for c in LOOKALIKE_CASES) == RUSSIAN_UPPER + RUSSIAN_LOWER

    @pytest.mark.parametrize("table", [LATIN, LOOKALIKE], ids=["latin", "lookalike"])
    def test_every_letter_mapped(self, table: Mapping[str, str]) -> None:
        """Both modes map every Russian letter, capitals included."""
        assert set(RUSSIAN_LOWER + RUSSIAN_UPPER) <= set(table)

    @pytest.mark.parametrize("table", [LATIN, LOOKALIKE], ids=["latin", "lookalike"])
    def test_output_is_gsm(self, table: Mapping[str, str]) -> None:
        """Every replacement is GSM 7-bit text, so a transliterated text is billed as Latin."""
        for letter, latin in table.items():
            assert gsm7_length(latin) is not None, letter


class TestSeedExamples:
    @pytest.mark.parametrize(
        ("text", "mode", "expected"),
        [
            ("привет", 1, "privet"),
            ("транслит", 2, "mpaHc/Ium"),
            ("привет", 0, "привет"),
        ],
    )
    def test_seed(self, text: str, mode: int, expected: str) -> None:
        """The examples of the SMSC documentation."""
        assert transliterate(text, mode) == expected


class TestLatin:
    @pytest.mark.parametrize(("lower", "latin", "upper_alone", "upper_caps"), LATIN_CASES)
    def test_letter(self, lower: str, latin: str, upper_alone: str, upper_caps: str) -> None:
        """Each letter: lower case, a capital alone, a capital between capitals."""
        upper = lower.upper()
        assert transliterate(lower, 1) == latin
        assert transliterate(upper, 1) == upper_alone
        assert transliterate(f"{upper}а", 1) == upper_alone + "a"
        assert transliterate(f"Б{upper}Б", 1) == f"B{upper_caps}B"
        assert transliterate(f"{upper}Б", 1) == f"{upper_caps}B"
        assert transliterate(f"Б{upper}", 1) == f"B{upper_caps}"

    @pytest.mark.parametrize(("letter", "latin"), EXTRA_LATIN)
    def test_ukrainian_belarusian(self, letter: str, latin: str) -> None:
        """Ukrainian and Belarusian letters have a Latin spelling too."""
        assert transliterate(letter, 1) == latin

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Щука", "Schuka"),
            ("ЩУКА", "SCHUKA"),
            ("ЖКХ", "ZHKH"),
            ("Юля", "Yulya"),
            ("ЮЛЯ", "YULYA"),
            ("Я иду", "Ya idu"),
            ("Щ.", "Sch."),
            ("OK Щ", "OK Sch"),
            ("ЩA", "SCHA"),  # a Latin capital neighbour counts too
            ("съешь", "s\"esh'"),
            ("Ёлка ЁЛКА", "Yolka YOLKA"),
            ("Київ", "Kiyiv"),
            ("Єва", "Yeva"),
            ("Мінск, вуліца", "Minsk, vulitsa"),
            ("Сервер db-1 упал: 100%", "Server db-1 upal: 100%"),
        ],
    )
    def test_words(self, text: str, expected: str) -> None:
        """Whole words, with the capital rule for multi-letter spellings."""
        assert transliterate(text, 1) == expected


class TestLookalike:
    @pytest.mark.parametrize(("letter", "expected"), LOOKALIKE_CASES)
    def test_letter(self, letter: str, expected: str) -> None:
        """Each of the 33 letters, upper and lower case."""
        assert transliterate(letter, 2) == expected

    @pytest.mark.parametrize(("letter", "expected"), EXTRA_LOOKALIKE)
    def test_ukrainian_belarusian(self, letter: str, expected: str) -> None:
        """Ukrainian and Belarusian letters have look-alikes too."""
        assert transliterate(letter, 2) == expected

    def test_sentence(self) -> None:
        """A sentence with capitals, digits and punctuation."""
        assert transliterate("Сервер упал в 03:15!", 2) == "CepBep yna/I B 03:15!"


class TestModes:
    @given(st.text(max_size=200))
    def test_mode_zero_is_identity(self, text: str) -> None:
        """Mode 0 returns the text unchanged."""
        assert transliterate(text, 0) == text

    @pytest.mark.parametrize("mode", [1, 2])
    @given(text=non_cyrillic)
    def test_non_cyrillic_unchanged(self, mode: int, text: str) -> None:
        """Characters outside the Cyrillic block pass through unchanged."""
        assert transliterate(text, mode) == text

    @pytest.mark.parametrize("mode", [1, 2])
    @given(text=st.text(alphabet=RUSSIAN_LOWER + RUSSIAN_UPPER + " .,", max_size=200))
    def test_russian_text_becomes_gsm(self, mode: int, text: str) -> None:
        """Russian text in modes 1 and 2 leaves no Cyrillic and fits GSM 7-bit."""
        result = transliterate(text, mode)
        assert gsm7_length(result) is not None

    @pytest.mark.parametrize("mode", [-1, 3, 10])
    def test_invalid_mode(self, mode: int) -> None:
        """A mode other than 0, 1, 2 is a ValueError."""
        with pytest.raises(ValueError, match="translit mode"):
            transliterate("привет", mode)
