"""The raw mail as it is stored: the command's password or API key masked.

The raw mail is kept for the operator (``mailbridge queue show``) and for
nothing else; the command line in it carries the account's password
(``alex:s3cret:…``) or API key (``:K3Y…:…``). :func:`mask_raw` replaces every
occurrence of the secret, as the mail wrote it, by ``***``:

* in the text as sent (8bit, 7bit) and quoted-printable, in the charset the
  text was decoded with and in UTF-8; a password only where it follows the
  login and a colon and comes before the next colon (``alex:pw:``), so a short
  password does not mask the rest of the mail; an API key of 6 characters or
  more anywhere;
* inside base64 parts, which are decoded, masked and encoded again with their
  line length.

The result is read again (:func:`~mailbridge.core.mail.read_mail`); if the
secret can still be found after ``<login>:`` in its text (a transfer
encoding or charset the masking did not cover), only the header block is
kept, with a line saying the body was dropped. The secret is never stored.

That second read costs as much as the first, so it is skipped where it cannot
find anything (:func:`_plainly_gone`): an ASCII secret without blanks whose
bytes no longer occur anywhere in the result, in a mail with no transfer
encoding to undo (no base64, quoted-printable or uuencode), no HTML to render,
and only charsets in which an ASCII character is always its own byte. The
reader's text is then those bytes decoded character for character, so the
secret cannot be in it.
"""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Iterable
from functools import lru_cache

from mailbridge.core.mail import read_mail
from mailbridge.core.mail.charset import codec_name
from mailbridge.errors import RequestError

__all__ = ["MASK", "mask_raw"]

MASK = b"***"
DROPPED = b"[mailbridge: the body is not kept: its password could not be masked]\r\n"
_MIN_BARE_KEY = 6
_BASE64_PART = re.compile(
    rb"(?im)^content-transfer-encoding:[ \t]*base64[ \t]*\r?\n"
    rb"(?:[^\r\n]+\r?\n)*?\r?\n"
    rb"((?:[A-Za-z0-9+/=]+[ \t]*\r?\n)+)"
)
_WS = rb"[ \t]*"


def _masked(match: re.Match[bytes]) -> bytes:
    """The replacement ``\\1***``, as a function: a template would be parsed by ``re``'s
    Python code on every ``sub``."""
    return match.group(1) + MASK


#: Codecs (``codecs.lookup`` names) in which each ASCII byte decodes to that character
#: and no other byte decodes to an ASCII character; detection only ever picks these.
_ASCII_TRANSPARENT = frozenset(
    {"ascii", "utf-8", "koi8-r", "koi8-u", "cp866", "cp1250", "cp1251", "cp1252",
     "iso8859-1", "iso8859-2", "iso8859-5", "iso8859-15"}
)  # fmt: skip
#: Words whose presence means the reader may decode or render the text (lower case).
_DECODING_MARKS = (b"base64", b"quoted-printable", b"uue", b"html")
_CHARSET_VALUE = re.compile(rb'charset[ \t]*=[ \t]*"?([a-z0-9_.:-]+)"?(?=[\s;]|$)')


def _forms(text: str, charsets: Iterable[str]) -> list[bytes]:
    out: set[bytes] = set()
    for charset in charsets:
        try:
            data = text.encode(charset)
        except (LookupError, UnicodeError):
            continue
        out.add(data)
        out.add(quopri.encodestring(data).rstrip(b"\n").removesuffix(b"="))
    return sorted((f for f in out if f), key=len, reverse=True)


@lru_cache(maxsize=256)
def _pattern(login: str, secret: str, charsets: tuple[str, ...]) -> re.Pattern[bytes]:
    secrets = b"|".join(re.escape(f) for f in _forms(secret, charsets))
    if login:
        logins = b"|".join(re.escape(f) for f in _forms(login, charsets))
        return re.compile(rb"((?:" + logins + rb")" + _WS + b":" + _WS + rb")(?:" + secrets + rb")")
    if len(secret) >= _MIN_BARE_KEY:
        return re.compile(rb"()(?:" + secrets + rb")")
    return re.compile(rb"(:" + _WS + rb")(?:" + secrets + rb")(?=" + _WS + b":)")


def _mask_base64(raw: bytes, pattern: re.Pattern[bytes]) -> bytes:
    def part(match: re.Match[bytes]) -> bytes:
        block = match.group(1)
        try:
            data = binascii.a2b_base64(block)
        except binascii.Error:
            return match.group(0)
        masked = pattern.sub(_masked, data)
        if masked == data:
            return match.group(0)
        eol = b"\r\n" if b"\r\n" in block else b"\n"
        width = max(4, len(block.split(eol, 1)[0].rstrip()))
        encoded = binascii.b2a_base64(masked, newline=False)
        lines = [encoded[i : i + width] for i in range(0, len(encoded), width)]
        head = match.group(0)[: match.start(1) - match.start(0)]
        return head + eol.join(lines) + eol

    return _BASE64_PART.sub(part, raw)


def _still_there(raw: bytes, login: str, secret: str, default_charset: str) -> bool:
    try:
        text = read_mail(raw, default_charset=default_charset).text
    except RequestError:
        return secret in raw.decode("latin-1")
    if login:
        return re.search(re.escape(login) + r"\s*:\s*" + re.escape(secret), text) is not None
    return secret in text


@lru_cache(maxsize=256)
def _plain_secret(secret: str) -> bytes | None:
    """``secret`` as bytes when it is ASCII without blanks, else None (see the module)."""
    if not secret.isascii() or any(c.isspace() for c in secret):
        return None
    return secret.encode("ascii")


def _plainly_gone(
    masked: bytes, secret: str, default_charset: str, lower: bytes | None = None
) -> bool:
    """True when the reader's text of ``masked`` (``lower``: it in lower case, when known)
    cannot hold ``secret`` (see the module)."""
    plain = _plain_secret(secret)
    if plain is None or masked.find(plain) >= 0:
        return False
    if lower is None:
        lower = masked.lower()
    for mark in _DECODING_MARKS:  # find(), not ``in``: no TypeError raised and dropped
        if lower.find(mark) >= 0:
            return False
    if codec_name(default_charset) not in _ASCII_TRANSPARENT:
        return False
    values = _CHARSET_VALUE.findall(lower)
    if len(values) != lower.count(b"charset"):
        return False  # a charset written in a way this check does not read (RFC 2231, folded)
    return all(codec_name(value.decode("ascii")) in _ASCII_TRANSPARENT for value in values)


def _headers_only(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(sep)
        if at >= 0:
            return raw[: at + len(sep)] + DROPPED
    return DROPPED


def mask_raw(
    raw: bytes, *, login: str, secret: str, charset: str, default_charset: str = "koi8-r"
) -> bytes:
    """``raw`` with ``secret`` (the password after ``login``, or an API key) masked."""
    if not secret:
        return raw
    charsets = tuple(dict.fromkeys(c for c in (charset, "utf-8") if c))
    pattern = _pattern(login, secret, charsets)
    masked = pattern.sub(_masked, raw)
    lower = masked.lower()
    if lower.find(b"base64") >= 0:
        masked = _mask_base64(masked, pattern)
        lower = masked.lower()
    if _plainly_gone(masked, secret, default_charset, lower):
        return masked
    if _still_there(masked, login, secret, default_charset):
        return _headers_only(masked)
    return masked
