"""Transliteration of Cyrillic text to Latin (the SMSC ``translit`` field, SPEC §1).

* Mode 0: the text as it is.
* Mode 1: Latin transliteration, ``привет`` → ``privet``. One table, close to
  what Russian SMS users write: ж zh, х h, ц ts, ч ch, ш sh, щ sch, ъ ``"``,
  ы y, ь ``'``, э e, ю yu, я ya, ё yo, й j; Ukrainian and Belarusian letters
  і i, ї yi, є ye, ґ g, ў u.
* Mode 2: look-alike Latin, ``транслит`` → ``mpaHc/Ium``: every letter is
  drawn with Latin letters, digits and signs that look like it.

Both tables write only characters of the GSM 7-bit default alphabet, so a
transliterated text is billed in 160/153-septet parts. Characters that are not
Cyrillic letters pass through unchanged.

Capitals in mode 1: a capital written with several Latin letters is spelled
in capitals when the character before or after it is a capital letter
(``ЩУКА`` → ``SCHUKA``, ``ЖКХ`` → ``ZHKH``), otherwise with only its first
letter capital (``Щука`` → ``Schuka``, ``Я`` → ``Ya``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["LATIN", "LOOKALIKE", "MODES", "transliterate"]

#: Mode 1, lower-case letters.
_LATIN_LOWER: dict[str, str] = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "yo",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "j",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "sch",
    "ъ": '"',
    "ы": "y",
    "ь": "'",
    "э": "e",
    "ю": "yu",
    "я": "ya",
    # Ukrainian and Belarusian
    "і": "i",
    "ї": "yi",
    "є": "ye",
    "ґ": "g",
    "ў": "u",
}

#: Mode 1: every letter, the capitals with only their first Latin letter capital.
LATIN: Mapping[str, str] = MappingProxyType(
    {
        **_LATIN_LOWER,
        **{low.upper(): lat[:1].upper() + lat[1:] for low, lat in _LATIN_LOWER.items()},
    }
)

#: Mode 2: look-alike Latin for every letter, upper and lower case.
LOOKALIKE: Mapping[str, str] = MappingProxyType(
    {
        "А": "A",
        "Б": "6",
        "В": "B",
        "Г": "r",
        "Д": "D",
        "Е": "E",
        "Ё": "E",
        "Ж": ">|<",
        "З": "3",
        "И": "U",
        "Й": "U'",
        "К": "K",
        "Л": "/I",
        "М": "M",
        "Н": "H",
        "О": "O",
        "П": "n",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "У": "Y",
        "Ф": "qp",
        "Х": "X",
        "Ц": "U,",
        "Ч": "4",
        "Ш": "W",
        "Щ": "W,",
        "Ъ": "'b",
        "Ы": "bI",
        "Ь": "b",
        "Э": "-)",
        "Ю": "IO",
        "Я": "9I",
        "а": "a",
        "б": "6",
        "в": "B",
        "г": "r",
        "д": "g",
        "е": "e",
        "ё": "e",
        "ж": ">|<",
        "з": "3",
        "и": "u",
        "й": "u'",
        "к": "k",
        "л": "/I",
        "м": "M",
        "н": "H",
        "о": "o",
        "п": "n",
        "р": "p",
        "с": "c",
        "т": "m",
        "у": "y",
        "ф": "qp",
        "х": "x",
        "ц": "u,",
        "ч": "4",
        "ш": "w",
        "щ": "w,",
        "ъ": "'b",
        "ы": "bI",
        "ь": "b",
        "э": "-)",
        "ю": "IO",
        "я": "9I",
        # Ukrainian and Belarusian
        "І": "I",
        "Ї": "I",
        "Є": "E",
        "Ґ": "r",
        "Ў": "Y",
        "і": "i",
        "ї": "i",
        "є": "e",
        "ґ": "r",
        "ў": "y",
    }
)

#: The modes ``transliterate`` knows.
MODES: frozenset[int] = frozenset({0, 1, 2})

_LATIN_TABLE = str.maketrans(dict(LATIN))
_LOOKALIKE_TABLE = str.maketrans(dict(LOOKALIKE))

#: Capitals that mode 1 writes with several letters.
_MULTI_CAPITALS: frozenset[str] = frozenset(
    ch for ch, lat in LATIN.items() if ch.isupper() and len(lat) > 1
)
_MULTI_CAPITAL_RE = re.compile("[" + "".join(sorted(_MULTI_CAPITALS)) + "]")


def _all_caps(match: re.Match[str]) -> str:
    """A multi-letter capital in all capitals when a neighbour is a capital letter."""
    text = match.string
    start, end = match.span()
    if (start > 0 and text[start - 1].isupper()) or (end < len(text) and text[end].isupper()):
        return LATIN[match.group()].upper()
    return match.group()


def transliterate(text: str, mode: int) -> str:
    """``text`` in translit ``mode`` (0 none, 1 Latin, 2 look-alike); other modes: ValueError."""
    if mode == 0:
        return text
    if mode == 1:
        if not _MULTI_CAPITALS.isdisjoint(text):
            text = _MULTI_CAPITAL_RE.sub(_all_caps, text)
        return text.translate(_LATIN_TABLE)
    if mode == 2:
        return text.translate(_LOOKALIKE_TABLE)
    raise ValueError(f"unknown translit mode {mode!r}")
