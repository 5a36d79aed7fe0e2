"""How many SMS parts a text takes, and the parts themselves (SPEC §1 "Parts").

Text that the GSM 03.38 default alphabet can carry travels in 7-bit septets:
one part holds 160 septets, a part of a longer message 153 (the rest of the
140 bytes is the concatenation header). The extension characters
``^{}\\[~]|€`` and form feed are an escape septet plus one more, so they
count two and a part never ends between the two. Any other text travels as
UCS-2 (UTF-16BE): 70 units in one part, 67 in a part of a longer message; a
character beyond the Basic Multilingual Plane is a surrogate pair of two
units and is never cut in half. Binary formats count bytes: 140 in one part,
134 in a part of a longer message.

Parts are filled greedily and are slices of the text: ``"".join(parts)`` is
always the text. Decisions:

* Empty text is one empty part (an SMS with no text is still one SMS). Formats
  that carry no text (HLR, ping) are counted by the caller.
* Formats other than 4 and 5 are counted as text (GSM 7-bit or UCS-2).
* Format 4 (binary): each character is one byte, so only U+0000..U+00FF are
  allowed (the text is Latin-1).
* Format 5 (binary as hex): two hex digits per byte, either case; ASCII
  whitespace anywhere is ignored (mail bodies wrap long lines). A part ends
  right after the hex digit that fills it: whitespace after it starts the
  next part, except whitespace at the very end, which stays in the last part.
* A binary text that breaks these rules raises :class:`InvalidBinaryError`,
  which is both a ``ValueError`` and a ``RequestError`` with number 1.
* A tab, a backtick or any control character other than LF, CR and form feed
  is not in the GSM alphabet: such a text is UCS-2.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mailbridge.errors import RequestError
from mailbridge.models import Encoding, Format, Split

__all__ = [
    "BINARY_MULTI_BYTES",
    "BINARY_SINGLE_BYTES",
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM7_MULTI_SEPTETS",
    "GSM7_SINGLE_SEPTETS",
    "UCS2_MULTI_UNITS",
    "UCS2_SINGLE_UNITS",
    "InvalidBinaryError",
    "binary_length",
    "gsm7_length",
    "split_text",
    "truncate_to_parts",
    "utf16_length",
]

GSM7_SINGLE_SEPTETS = 160
GSM7_MULTI_SEPTETS = 153
UCS2_SINGLE_UNITS = 70
UCS2_MULTI_UNITS = 67
BINARY_SINGLE_BYTES = 140
BINARY_MULTI_BYTES = 134

#: GSM 03.38 default alphabet in code order 0x00..0x7F, 16 to a row. Position
#: 0x1B is the escape to the extension table, not a character of its own.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x10
    " !\"#¤%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "¡ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50
    "¿abcdefghijklmno"  # 0x60
    "pqrstuvwxyzäöñüà"  # 0x70
)

#: Characters of the default alphabet: one septet each.
GSM7_BASIC: frozenset[str] = frozenset(_BASIC_TABLE) - {"\x1b"}

#: The extension table (escape 0x1B + one septet): two septets each.
#: Form feed 0x0A, ^ 0x14, { 0x28, } 0x29, \\ 0x2F, [ 0x3C, ~ 0x3D, ] 0x3E,
#: | 0x40, € 0x65.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

_GSM7_ALL: frozenset[str] = GSM7_BASIC | GSM7_EXTENSION

#: ASCII characters that are in neither table: a pure-ASCII text is GSM text
#: unless it holds one of these.
_ASCII_NOT_GSM: frozenset[str] = frozenset(map(chr, range(128))) - _GSM7_ALL

# The sets above as character classes: a regular expression scans a text
# several times faster than testing each character against a frozenset.
_ASCII_SPECIAL_RE = re.compile(
    "[" + re.escape("".join(sorted(_ASCII_NOT_GSM | GSM7_EXTENSION))) + "]"
)
_NOT_GSM_RE = re.compile("[^" + re.escape("".join(sorted(_GSM7_ALL))) + "]")
_EXTENSION_RE = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")

_HEX_DIGITS: frozenset[str] = frozenset("0123456789abcdefABCDEF")
_HEX_SPACE: frozenset[str] = frozenset(" \t\r\n\f\v")
_HEX_ALLOWED: frozenset[str] = _HEX_DIGITS | _HEX_SPACE


class InvalidBinaryError(RequestError, ValueError):
    """A format 4/5 text that is not binary data: answered with ``ERROR = 1``."""

    def __init__(self, detail: str) -> None:
        super().__init__(1, detail)


def gsm7_length(text: str) -> int | None:
    """Septets ``text`` takes in the GSM 03.38 alphabet, or None if it does not fit it."""
    if text.isascii():
        # One pass: the characters that are not one plain septet.
        special = _ASCII_SPECIAL_RE.findall(text)
        if not special:
            return len(text)
        if GSM7_EXTENSION.issuperset(special):
            return len(text) + len(special)
        return None
    if _NOT_GSM_RE.search(text):
        return None
    return _septets(text)


def _septets(text: str) -> int:
    """Septets of a text already known to be GSM: extension characters count two."""
    return len(text) + len(_EXTENSION_RE.findall(text))


def utf16_length(text: str) -> int:
    """UTF-16 code units of ``text``: a character beyond U+FFFF counts two."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def binary_length(text: str, fmt: Format) -> int:
    """Bytes of a format 4 (Latin-1) or 5 (hex) text; raises :class:`InvalidBinaryError`."""
    if fmt == Format.BINARY:
        if text and max(text) > "\xff":
            raise InvalidBinaryError("binary text holds a character beyond U+00FF")
        return len(text)
    if fmt == Format.BINARY_HEX:
        if not _HEX_ALLOWED.issuperset(text):
            raise InvalidBinaryError("hex text holds a character that is not a hex digit")
        digits = len(text) - sum(text.count(ch) for ch in _HEX_SPACE.intersection(text))
        if digits % 2:
            raise InvalidBinaryError("hex text has an odd number of digits")
        return digits // 2
    raise ValueError(f"format {int(fmt)} is not binary")


def split_text(text: str, fmt: Format = Format.SMS) -> Split:
    """Cut ``text`` into the SMS parts it is sent (and billed) as.

    Formats 4 and 5 are binary; every other format is text, GSM 7-bit when the
    alphabet allows, else UCS-2. Raises :class:`InvalidBinaryError` for a
    binary text that is not Latin-1 (4) or not hex (5).
    """
    if fmt == Format.BINARY or fmt == Format.BINARY_HEX:
        return _split_binary(text, fmt)
    septets = gsm7_length(text)
    if septets is not None:
        if septets <= GSM7_SINGLE_SEPTETS:
            return Split(encoding=Encoding.GSM7, parts=(text,))
        if septets == len(text):
            parts = _chunks(text, GSM7_MULTI_SEPTETS)
        else:
            parts = _greedy(text, GSM7_MULTI_SEPTETS, _septets)
        return Split(encoding=Encoding.GSM7, parts=parts)
    units = utf16_length(text)
    if units <= UCS2_SINGLE_UNITS:
        return Split(encoding=Encoding.UCS2, parts=(text,))
    if units == len(text):
        parts = _chunks(text, UCS2_MULTI_UNITS)
    else:
        parts = _greedy(text, UCS2_MULTI_UNITS, utf16_length)
    return Split(encoding=Encoding.UCS2, parts=parts)


def truncate_to_parts(text: str, max_parts: int, *, suffix: str = "...") -> str:
    """``text`` if it fits ``max_parts`` SMS parts, else a prefix of it ending with ``suffix``.

    The prefix is the longest that fits with the suffix counted inside
    ``max_parts``; whitespace before the suffix is dropped.
    For the forward and number-address modes (SPEC §3).
    """
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    if split_text(text).count <= max_parts:
        return text
    # The part count never falls as the prefix grows, so the longest prefix
    # that fits is found by bisection.
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if split_text(text[:mid] + suffix).count <= max_parts:
            low = mid
        else:
            high = mid - 1
    if low == 0 and split_text(suffix).count > max_parts:
        raise ValueError("the suffix alone does not fit")
    return text[:low].rstrip() + suffix


def _chunks(text: str, size: int) -> tuple[str, ...]:
    return tuple(text[i : i + size] for i in range(0, len(text), size))


def _greedy(text: str, limit: int, size: Callable[[str], int]) -> tuple[str, ...]:
    """Greedy parts of at most ``limit`` units; ``size`` counts 1 or 2 units a character."""
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + limit, len(text))
        excess = size(text[start:end]) - limit
        while excess > 0:
            # Each character weighs at most 2: at least half the excess must go.
            end -= (excess + 1) // 2
            excess = size(text[start:end]) - limit
        parts.append(text[start:end])
        start = end
    return tuple(parts)


def _split_binary(text: str, fmt: Format) -> Split:
    size = binary_length(text, fmt)
    if size <= BINARY_SINGLE_BYTES:
        return Split(encoding=Encoding.BINARY, parts=(text,))
    if fmt == Format.BINARY:
        return Split(encoding=Encoding.BINARY, parts=_chunks(text, BINARY_MULTI_BYTES))
    # Hex: a part ends right after the digit that completes its last byte.
    limit = 2 * BINARY_MULTI_BYTES
    parts: list[str] = []
    start = 0
    digits = 0
    for i, ch in enumerate(text):
        if ch in _HEX_DIGITS:
            digits += 1
            if digits == limit:
                parts.append(text[start : i + 1])
                start = i + 1
                digits = 0
    if start < len(text):
        if digits or not parts:
            parts.append(text[start:])
        else:
            # Only whitespace is left: it stays with the last part.
            parts[-1] += text[start:]
    return Split(encoding=Encoding.BINARY, parts=tuple(parts))
