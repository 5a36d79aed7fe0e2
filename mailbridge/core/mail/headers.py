"""The reply-relevant header fields of a mail: raw values as text, the decoded
Subject, and the address of ``From``.
"""

from __future__ import annotations

import functools
import re
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.utils import parseaddr

from mailbridge.core.mail.charset import codec_name, detect

__all__ = ["decode_subject", "from_address", "header_text", "no_surrogates", "top_fields"]

# --- headers -------------------------------------------------------------------------------

_TOP_FIELDS = frozenset(
    {"subject", "from", "message-id", "auto-submitted", "precedence", "list-id"}
)
_HEADER_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
#: ``decode_header`` is quadratic in a line of unclosed encoded words.
_MAX_DECODED_SUBJECT = 2048
_MAX_FROM_CHARS = 1024
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*")
_NOT_IN_ADDRESS = re.compile(r'[\s"\\()<>,;]')
_QUOTED_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_COMMENT = re.compile(r"\([^()]*\)")
_ANGLE_ADDR = re.compile(r"<\s*([^<>\s]*)\s*>")
_ADDRESS_SPLIT = re.compile(r"[\s,;()<>\"]+")
_SURROGATES = re.compile("[\ud800-\udfff]")
#: An RFC 2047 encoded word, as ``email.header.decode_header`` finds it (its ``ecre``).
_ENCODED_WORD = re.compile(r"=\?[^?]*?\?[qQbB]\?.*?\?=", re.MULTILINE)

# --- headers -------------------------------------------------------------------------------


def header_text(value: bytes, fallback_codec: str) -> str:
    """A raw header value as text: ASCII, else UTF-8, else detected, else the fallback."""
    if value.isascii():
        text = value.decode("ascii")
    else:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode(detect(value) or fallback_codec, "replace")
    return _HEADER_CONTROLS.sub(" ", text).strip()


def top_fields(root: Message) -> dict[str, bytes]:
    """The first value of each reply-relevant header of the mail, raw bytes, unfolded."""
    fields: dict[str, bytes] = {}
    for name, value in root.raw_items():
        key = name.rstrip(" \t").lower()
        if key in _TOP_FIELDS and key not in fields:
            text = str(value).replace("\n", "").strip(" \t")
            fields[key] = text.encode("utf-8", "surrogateescape")
    return fields


def decode_subject(text: str, fallback_codec: str) -> str:
    """The Subject (already read as text) with its RFC 2047 encoded words decoded."""
    if "=?" not in text:
        return text
    head, tail = text, ""
    if len(text) > _MAX_DECODED_SUBJECT:
        end = text.rfind(" ", 0, _MAX_DECODED_SUBJECT)
        end = end if end > 0 else _MAX_DECODED_SUBJECT
        head, tail = text[:end], text[end:]
    ascii_only = head.isascii()
    if not ascii_only:
        head = _protect_backslashes(head)
    out: list[str] = []
    try:
        for chunk, charset in decode_header(head):
            if isinstance(chunk, str):  # no encoded word at all
                out.append(chunk)
            elif charset is None:  # text between words, as raw-unicode-escape bytes
                out.append(_unencoded(chunk, ascii_only=ascii_only))
            else:  # an RFC 2231 language suffix (utf-8*ru) is no part of the name
                codec = codec_name(charset.split("*", 1)[0]) or fallback_codec
                out.append(chunk.decode(codec, "replace"))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text  # a broken base64 word: the Subject stays as it came
    return no_surrogates(_HEADER_CONTROLS.sub(" ", "".join(out) + tail).strip())


def no_surrogates(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD, so that it encodes as UTF-8."""
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def _protect_backslashes(text: str) -> str:
    """Backslashes outside encoded words written as ``\\u005c``.

    ``decode_header`` hands back the text between encoded words as
    ``raw-unicode-escape`` bytes when the header is not ASCII: characters
    above U+00FF become ``\\u`` and four hex digits, but a backslash stays as it is, so a
    literal ``\\ud83d`` or ``\\U0001F600`` in the Subject would be read back as
    a surrogate or an emoji. Written as ``\\u005c`` it comes back a backslash.
    """
    if "\\" not in text:
        return text
    out: list[str] = []
    at = 0
    for word in _ENCODED_WORD.finditer(text):
        out.append(text[at : word.start()].replace("\\", "\\u005c"))
        out.append(word.group(0))
        at = word.end()
    out.append(text[at:].replace("\\", "\\u005c"))
    return "".join(out)


def _unencoded(chunk: bytes, *, ascii_only: bool) -> str:
    """Text that ``decode_header`` returns between encoded words, back as a string."""
    if not ascii_only:
        try:
            return chunk.decode("raw-unicode-escape")
        except UnicodeDecodeError:  # cannot happen once backslashes are protected
            pass
    return chunk.decode("latin-1")


def from_address(value: str) -> str:
    """The addr-spec of a From value, as ``parseaddr`` reads it where it can."""
    return _address(value[:_MAX_FROM_CHARS])


@functools.lru_cache(maxsize=256)
def _address(value: str) -> str:
    """:func:`from_address` of at most ``_MAX_FROM_CHARS`` (senders recur)."""
    if _DOT_ATOM_ADDRESS.fullmatch(value):
        return value  # what parseaddr gives back for it, at a tenth of the cost
    try:
        address = parseaddr(value)[1]
    except Exception:  # RecursionError on nested comments
        address = ""
    if address and not _NOT_IN_ADDRESS.search(address):
        return address
    return _plain_address(value)


def _plain_address(value: str) -> str:
    """The ``<…>`` part of a From value, else the first word with ``@``, else the first word."""
    text = _QUOTED_STRING.sub(" ", value)
    while True:
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    angle = _ANGLE_ADDR.search(text)
    if angle is not None:
        return angle.group(1)
    words = [word for word in _ADDRESS_SPLIT.split(text) if word]
    for word in words:
        if "@" in word:
            return word
    return words[0] if words else ""
