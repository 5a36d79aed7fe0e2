"""Charsets of a mail body: declared, detected (charset-normalizer plus a Russian
letter-frequency tie-break), and the labels mailbridge reports.
"""

from __future__ import annotations

import codecs
import functools
import math
import re
from collections import Counter
from email.message import Message
from email.utils import collapse_rfc2231_value

import charset_normalizer

from mailbridge.core.mail.guards import CHARSET_PARAM, MAX_PARAM_HEADER, MAX_PARAM_SEMICOLONS
from mailbridge.errors import RequestError

__all__ = [
    "DETECTED_CHARSETS",
    "charset_label",
    "codec_name",
    "declared_charset",
    "decode_text",
    "detect",
]

#: Python codec names detection chooses among (SPEC §1), UTF-8 first.
DETECTED_CHARSETS: tuple[str, ...] = ("utf_8", "koi8_r", "cp1251", "cp866", "iso8859_5")
_SINGLE_BYTE = DETECTED_CHARSETS[1:]

#: Names reported in ``MailContent.charset`` for the charsets mailbridge knows
#: by heart (keyed by ``codecs.lookup(...).name``); others keep the name the
#: mail declared, lower-cased.
_LABELS = {
    "ascii": "us-ascii",
    "utf-8": "utf-8",
    "koi8-r": "koi8-r",
    "cp1251": "windows-1251",
    "cp866": "cp866",
    "iso8859-5": "iso-8859-5",
}

#: Codecs that exist in Python but are no charset of a mail body.
_NOT_MAIL_CODECS = frozenset(
    {
        "base64",
        "bz2",
        "hex",
        "idna",
        "mbcs",
        "oem",
        "punycode",
        "quopri",
        "raw-unicode-escape",
        "rot-13",
        "undefined",
        "unicode-escape",
        "uu",
        "zlib",
    }
)
_CHARSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,39}")

# --- detection -----------------------------------------------------------------------------

#: Frequency of each Russian letter in ordinary text, per cent.
_RUSSIAN_FREQUENCY = """
    о 10.97  е 8.45  а 8.01  и 7.35  н 6.70  т 6.26  с 5.47  р 4.73  в 4.54  л 4.40  к 3.49
    м 3.21   д 2.98  п 2.81  у 2.62  я 2.01  ы 1.90  ь 1.74  г 1.70  з 1.65  б 1.59  ч 1.44
    й 1.21   х 0.97  ж 0.94  ш 0.73  ю 0.64  ц 0.48  щ 0.36  э 0.32  ф 0.26  ъ 0.04  ё 0.04
"""
_LOG_LETTER = {
    letter: math.log(float(share) / 100)
    for lower, share in re.findall(r"(\w) ([0-9.]+)", _RUSSIAN_FREQUENCY)
    for letter in (lower, lower.upper())
}
#: Log-likelihood of a non-ASCII character that is not a Russian letter
#: (box drawing, Latin-1 symbols, …) and of a word in mixed case (``пРИВЕТ``).
_LOG_OTHER = math.log(0.0003)
_LOG_MIXED_CASE = math.log(0.01)
_MIXED_CASE = re.compile(r"[а-яё][А-ЯЁ]|[А-ЯЁ]{2}[а-яё]")
#: How much likelier each code page is a priori when the letters cannot tell.
_LOG_PRIOR = {"koi8_r": 0.0, "cp1251": 0.0, "cp866": -1.5, "iso8859_5": -3.0}
#: A tie-break is conclusive when the winner is this much likelier (e**3 ≈ 20×).
_CONCLUSIVE_MARGIN = 3.0
_DETECT_SAMPLE_BYTES = 64 * 1024


@functools.lru_cache(maxsize=128)
def charset_label(name: str) -> str | None:
    """The name mailbridge reports for charset ``name``, or None if Python has no such codec.

    ``charset_label("Windows-1251") == "windows-1251"``,
    ``charset_label("cp1251") == "windows-1251"``, ``charset_label("x-unknown") is None``.
    The config loader can use it to check ``[smtp] default_charset``.
    """
    codec = codec_name(name)
    if codec is None:
        return None
    return _LABELS.get(codec, name.strip().strip('"').lower())


def declared_charset(part: Message) -> str | None:
    """The ``charset`` parameter of the part's Content-Type, RFC 2231 forms included."""
    header = part.get("content-type")
    if header is None:
        return None
    value = str(header)
    if len(value) > MAX_PARAM_HEADER or value.count(";") > MAX_PARAM_SEMICOLONS:
        match = CHARSET_PARAM.search(value)  # get_param would be quadratic here
        return match.group(1) if match else None
    return _charset_param(value)


@functools.lru_cache(maxsize=256)
def _charset_param(content_type: str) -> str | None:
    """``get_param("charset")`` of a Content-Type value (a few of them recur in every mail)."""
    header = Message()
    header["Content-Type"] = content_type
    try:
        param = header.get_param("charset")
        return None if param is None else collapse_rfc2231_value(param)
    except Exception:  # an RFC 2231 value in a charset that cannot decode it
        return None


def decode_text(data: bytes, declared: str | None, default_codec: str) -> tuple[str, str]:
    """Decode body bytes by the SPEC §1 charset rules; return (text, charset label)."""
    codec = codec_name(declared) if declared else None
    if codec is not None:
        try:
            return data.decode(codec), charset_label(declared or codec) or codec
        except UnicodeError:
            pass  # a lying charset: detect
    if data.isascii():
        return data.decode("ascii"), "us-ascii"
    detected = detect(data)
    if detected is not None:
        return data.decode(detected), _LABELS[codecs.lookup(detected).name]
    try:
        text = data.decode(default_codec)
    except UnicodeError:
        raise RequestError(1, "the text cannot be decoded in any charset") from None
    return text, _LABELS.get(default_codec, default_codec)


@functools.lru_cache(maxsize=128)
def codec_name(label: str) -> str | None:
    """The Python codec name for a charset label, or None for an unknown or non-text one."""
    name = label.strip().strip('"').strip()
    if not _CHARSET_NAME.fullmatch(name):
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _NOT_MAIL_CODECS:
        return None
    return info.name


def detect(data: bytes) -> str | None:
    """The charset of undeclared (or wrongly declared) non-ASCII bytes, when conclusive."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf_8"
    sample = data[:_DETECT_SAMPLE_BYTES]
    matches = list(charset_normalizer.from_bytes(sample, cp_isolation=list(_SINGLE_BYTE)))
    if not matches:
        return None
    ranked = {m.encoding: (round(m.chaos, 3), -round(m.coherence, 3)) for m in matches}
    best = min(ranked.values())
    tied = [encoding for encoding, rank in ranked.items() if rank == best]
    if len(tied) == 1:
        return tied[0]
    text_sample = sample[:4096]
    scores = sorted(
        (
            (_russian_score(text_sample.decode(enc)) + _LOG_PRIOR.get(enc, -5.0), enc)
            for enc in tied
        ),
        reverse=True,
    )
    if scores[0][0] - scores[1][0] >= _CONCLUSIVE_MARGIN:
        return scores[0][1]
    return None


def _russian_score(text: str) -> float:
    """Log-likelihood that the non-ASCII characters of ``text`` are Russian prose."""
    score = 0.0
    for char, count in Counter(text).items():
        if char.isascii():
            continue
        score += count * _LOG_LETTER.get(char, _LOG_OTHER)
    return score + _LOG_MIXED_CASE * len(_MIXED_CASE.findall(text))
