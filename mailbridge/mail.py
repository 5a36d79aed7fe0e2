"""Read the bytes of one e-mail into a :class:`~mailbridge.models.MailContent` (SPEC §1).

What is read
    The text is the first ``text/plain`` part that is not an attachment
    (``Content-Disposition: attachment``) and not blank; else the first
    ``text/html`` part rendered to text (:mod:`mailbridge.htmltext`); else a
    blank ``text/plain`` part; else nothing (empty text). Parts are walked
    depth first in mail order through any ``multipart/*``; a
    ``message/rfc822`` part is somebody else's mail and is not entered.
    Transfer encodings (base64, quoted-printable, 7bit/8bit/binary) and
    RFC 2047 encoded words are decoded; line breaks become LF; a leading
    byte-order mark is dropped.

Charset (SPEC §1 "Charset")
    The declared ``charset=`` (RFC 2231 forms included) when the bytes decode
    strictly in it. Otherwise, and for an unknown charset name (treated as
    undeclared), the charset is detected: pure ASCII needs nothing; bytes that
    are valid UTF-8 are UTF-8; else charset-normalizer chooses among KOI8-R,
    CP1251, CP866 and ISO-8859-5. Its choice is *conclusive* when exactly one
    candidate has the lowest mess and the highest coherence. Short Russian
    texts (a command whose message is ``Да`` or ``ВНИМАНИЕ АВАРИЯ``) often
    leave several candidates tied, because every one of these code pages
    decodes any byte string; the tie is broken by how Russian the decoded
    letters look (letter frequencies, and words that are all lower case, all
    upper case or capitalised), and the tie-break is conclusive only when one
    candidate wins by a clear margin. When nothing is conclusive the
    ``default_charset`` (``koi8-r``, SMSC's default) is used; text that does
    not decode even in it is ``RequestError(1)``.

Command
    The text between the first ``[text]`` and the next ``[/text]`` (ASCII
    case-insensitive; without ``[/text]``, up to the end), else the whole
    text without its RFC 3676 signature: everything from the last line that
    is exactly ``-- `` on. A bare ``--`` line is *not* a delimiter: it is
    common in script output and command text, and SPEC names the line
    ``-- ``. The command is not stripped; the grammar strips its fields.

Headers
    ``subject`` is decoded (raw 8-bit bytes as UTF-8, else detected like an
    undeclared body; then RFC 2047 words, adjacent words of one charset
    joined before decoding so a character split between words survives;
    a bad word decodes with replacement characters, never an error).
    ``from_address`` is the addr-spec of ``From`` (the ``<…>`` part, else
    the first word with ``@``, else the first word). ``message_id``,
    ``auto_submitted``, ``precedence`` and ``list_id`` are the raw values,
    unfolded and stripped. In every header value control characters
    (CR, LF, TAB, NUL, …) and Unicode line separators become spaces, so no
    value taken from a mail can break a header line of the reply.

Hostile mail
    Any bytes give a ``MailContent`` or a ``RequestError(1)``; time and memory
    are bounded by these caps:

    ==========================  =====================================
    ``MAX_MAIL_BYTES``          10 MiB of raw mail
    ``MAX_HEADER_BYTES``        64 KiB of header lines, all parts together
    ``MAX_DEPTH``               10 nested ``multipart`` levels
    ``MAX_PARTS``               100 MIME entities walked
    ``MAX_TEXT_BYTES``          1 MiB of decoded text in one part
    ==========================  =====================================

    The walk stops at the first usable ``text/plain`` part, so whatever
    follows it (a giant attachment, a MIME bomb) is never looked at; a cap
    exceeded before that is ``RequestError(1)``.

The MIME structure is split here rather than by :mod:`email.feedparser`,
whose boundary stack makes each line cost as much as the nesting depth
(a 300-level bomb of 19 KB takes 36 ms, 1000 levels raise RecursionError)
and which cannot be told to stop early. ``Content-Type`` parameters and
``From`` are also read here: ``email.message.Message.get_param`` is
quadratic in a quoted value full of ``;`` (81 ms for 8 KB) and
``email.utils.parseaddr`` raises RecursionError on nested comments.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import math
import re
import urllib.parse
from collections import Counter
from dataclasses import dataclass

import charset_normalizer

from mailbridge.errors import RequestError
from mailbridge.htmltext import html_to_text
from mailbridge.models import MailContent

__all__ = [
    "DETECTED_CHARSETS",
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_MAIL_BYTES",
    "MAX_PARTS",
    "MAX_TEXT_BYTES",
    "charset_label",
    "read_mail",
]

MAX_MAIL_BYTES = 10 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_DEPTH = 10
MAX_PARTS = 100
MAX_TEXT_BYTES = 1024 * 1024

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

# --- the MIME structure --------------------------------------------------------------------

#: The header lines of an entity, as :mod:`email.feedparser` sees them: lines
#: that start a field (``name:``), continue one (leading blank) or are an mbox
#: ``From `` line. The first other line ends the headers.
_HEADER_BLOCK = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\n]*(?:\n|\Z))*")
_FOLD = re.compile(rb"\n(?=[ \t])")

_PART_FIELDS = frozenset({b"content-type", b"content-transfer-encoding", b"content-disposition"})
_TOP_FIELDS = _PART_FIELDS | {
    b"subject",
    b"from",
    b"message-id",
    b"auto-submitted",
    b"precedence",
    b"list-id",
}

#: One ``name=value`` parameter of a structured header; whitespace is accepted
#: as a separator where ``;`` is missing. The match starts at the name (the
#: look-behind rejects positions inside a word at once) and every quantifier is
#: possessive; a quoted value runs to its closing quote or to the end. So no
#: attempt rescans text another attempt has scanned, and the scan is linear.
_PARAM = re.compile(
    r'(?<![^;\s])([^\s=;"]++)\s*+=\s*+("(?:[^"\\]++|\\.?)*+(?:"|\Z)|[^;\s]*+)', re.DOTALL
)
_STRUCTURED_HEAD = re.compile(r"\s*([^\s;]*)")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)

# --- text ----------------------------------------------------------------------------------

_TEXT_OPEN = re.compile(r"\[text\]", re.IGNORECASE | re.ASCII)
_TEXT_CLOSE = re.compile(r"\[/text\]", re.IGNORECASE | re.ASCII)
_SIGNATURE = re.compile(r"^-- $", re.MULTILINE)
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")

# --- headers -------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?\s]*)\?=")
_HEADER_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_QUOTED_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_COMMENT = re.compile(r"\([^()]*\)")
_ANGLE_ADDR = re.compile(r"<\s*([^<>\s]*)\s*>")
_ADDRESS_SPLIT = re.compile(r"[\s,;()<>\"]+")
_MAX_FROM_CHARS = 1024

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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entity:
    """The parsed headers of one MIME entity and where its body lies in the mail."""

    fields: dict[bytes, bytes]
    body_start: int
    body_end: int
    content_type: str
    params: dict[str, str]
    disposition: str
    transfer_encoding: str


@dataclass(slots=True, kw_only=True)
class _Walk:
    """State of one walk through the MIME tree."""

    raw: bytes
    default_codec: str
    parts: int = 0
    header_bytes: int = 0
    blank_plain: tuple[str, str] | None = None
    html: _Entity | None = None


# --- public --------------------------------------------------------------------------------


def read_mail(raw: bytes, *, default_charset: str = "koi8-r") -> MailContent:
    """Read the text, command and reply-relevant headers out of the bytes of a mail.

    Raises ``RequestError(1)`` when the text cannot be decoded or the mail is
    hostile beyond the caps of this module, and ``ValueError`` when
    ``default_charset`` is not a charset Python knows (a configuration error).
    """
    default_codec = _codec(default_charset)
    if default_codec is None:
        raise ValueError(f"unknown default charset {default_charset!r}")
    if len(raw) > MAX_MAIL_BYTES:
        raise RequestError(1, f"mail larger than {MAX_MAIL_BYTES} bytes")
    data = bytes(raw)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    walk = _Walk(raw=data, default_codec=default_codec)
    top = _read_entity(walk, 0, len(data), "text/plain", _TOP_FIELDS)
    found = _walk_entity(walk, top, depth=0)
    if found is None and walk.html is not None:
        markup, charset = _decode_entity(walk, walk.html)
        found = (html_to_text(markup), charset)
    if found is None:
        found = walk.blank_plain
    text, charset = found if found is not None else ("", "us-ascii")
    body_codec = _codec(charset)
    header_codec = body_codec if body_codec not in (None, "ascii") else default_codec
    fields = top.fields
    return MailContent(
        subject=_decode_subject(fields.get(b"subject", b""), header_codec),
        text=text,
        command=_command(text),
        charset=charset,
        from_address=_from_address(_header_text(fields.get(b"from", b""), header_codec)),
        message_id=_header_text(fields.get(b"message-id", b""), header_codec),
        auto_submitted=_header_text(fields.get(b"auto-submitted", b""), header_codec),
        precedence=_header_text(fields.get(b"precedence", b""), header_codec),
        list_id=_header_text(fields.get(b"list-id", b""), header_codec),
    )


@functools.lru_cache(maxsize=128)
def charset_label(name: str) -> str | None:
    """The name mailbridge reports for charset ``name``, or None if Python has no such codec.

    ``charset_label("Windows-1251") == "windows-1251"``,
    ``charset_label("cp1251") == "windows-1251"``, ``charset_label("x-unknown") is None``.
    The config loader can use it to check ``[smtp] default_charset``.
    """
    codec = _codec(name)
    if codec is None:
        return None
    return _LABELS.get(codec, name.strip().strip('"').lower())


# --- the MIME walk -------------------------------------------------------------------------


def _walk_entity(walk: _Walk, entity: _Entity, *, depth: int) -> tuple[str, str] | None:
    """Walk ``entity`` depth first; return (text, charset) of the first usable text/plain."""
    maintype, _, subtype = entity.content_type.partition("/")
    if maintype == "multipart":
        if depth >= MAX_DEPTH:
            raise RequestError(1, f"MIME parts nested deeper than {MAX_DEPTH}")
        boundary = _param(entity.params, "boundary")
        if not boundary:
            return None
        child_type = "message/rfc822" if subtype == "digest" else "text/plain"
        for start, end in _split_parts(walk.raw, entity.body_start, entity.body_end, boundary):
            child = _read_entity(walk, start, end, child_type, _PART_FIELDS)
            found = _walk_entity(walk, child, depth=depth + 1)
            if found is not None:
                return found
        return None
    if entity.disposition == "attachment":
        return None
    if entity.content_type == "text/plain":
        text, charset = _decode_entity(walk, entity)
        if text.strip():
            return text, charset
        if walk.blank_plain is None:
            walk.blank_plain = (text, charset)
    elif entity.content_type == "text/html" and walk.html is None:
        walk.html = entity
    return None


def _read_entity(
    walk: _Walk, start: int, end: int, default_type: str, wanted: frozenset[bytes]
) -> _Entity:
    """Parse the headers of the entity in ``walk.raw[start:end]``, counting the caps."""
    walk.parts += 1
    if walk.parts > MAX_PARTS:
        raise RequestError(1, f"more than {MAX_PARTS} MIME parts")
    budget = MAX_HEADER_BYTES - walk.header_bytes
    block = _HEADER_BLOCK.match(walk.raw, start, min(end, start + budget + 1))
    header_end = block.end() if block is not None else start
    if header_end - start > budget:
        raise RequestError(1, f"more than {MAX_HEADER_BYTES} bytes of headers")
    walk.header_bytes += header_end - start
    body_start = header_end
    if walk.raw[body_start : body_start + 1] == b"\n":
        body_start += 1
    fields = _fields(walk.raw[start:header_end], wanted)
    content_type, params = _structured(fields.get(b"content-type", b""))
    if content_type.count("/") != 1 or content_type.startswith("/") or content_type.endswith("/"):
        content_type = default_type
    disposition, _ = _structured(fields.get(b"content-disposition", b""))
    encoding = fields.get(b"content-transfer-encoding", b"").decode("latin-1")
    return _Entity(
        fields=fields,
        body_start=body_start,
        body_end=max(body_start, end),
        content_type=content_type,
        params=params,
        disposition=disposition,
        transfer_encoding=encoding.strip().strip('"').lower(),
    )


def _fields(block: bytes, wanted: frozenset[bytes]) -> dict[bytes, bytes]:
    """The first value of each wanted field of a header block, unfolded and stripped."""
    fields: dict[bytes, bytes] = {}
    for line in _FOLD.sub(b"", block).split(b"\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.rstrip(b" \t").lower()
        if key in wanted and key not in fields:
            fields[key] = value.strip(b" \t")
    return fields


def _structured(value: bytes) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype; name=value; …`` into the lower-cased type and raw parameters."""
    text = value.decode("latin-1")
    head = _STRUCTURED_HEAD.match(text)
    kind = head.group(1).lower() if head else ""
    params: dict[str, str] = {}
    for match in _PARAM.finditer(text, head.end() if head else 0):
        name = match.group(1).lower()
        raw = match.group(2)
        params.setdefault(name, raw)
    return kind, params


def _param(params: dict[str, str], name: str) -> str | None:
    """A parameter's value, unquoted, RFC 2231 extended and continued forms included."""
    if name in params:
        return _unquote(params[name])
    if f"{name}*" in params:
        return _rfc2231(_unquote(params[f"{name}*"]), extended=True)
    pieces: list[str] = []
    for index in range(100):
        if f"{name}*{index}" in params:
            pieces.append(_unquote(params[f"{name}*{index}"]))
        elif f"{name}*{index}*" in params:
            pieces.append(_rfc2231(_unquote(params[f"{name}*{index}*"]), extended=index == 0))
        else:
            break
    return "".join(pieces) if pieces else None


def _unquote(value: str) -> str:
    """A parameter value without its quotes and quoted-pair backslashes."""
    if not value.startswith('"'):
        return value
    inner = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
    return _QUOTED_PAIR.sub(r"\1", inner)


def _rfc2231(value: str, *, extended: bool) -> str:
    """Decode an RFC 2231 ``charset'language'percent-encoded`` value (charset ignored:
    the values read here, charset and boundary names, are ASCII)."""
    if extended:
        pieces = value.split("'", 2)
        if len(pieces) == 3:
            value = pieces[2]
    return urllib.parse.unquote(value, encoding="latin-1")


def _split_parts(raw: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """The (start, end) of each body part of a multipart body, preamble and epilogue left out.

    A delimiter is a line ``--boundary`` (``--boundary--`` closes), trailing
    blanks allowed; the line break before it belongs to it. Without a closing
    delimiter the last part runs to the end of the body.
    """
    # The pattern starts with a literal, which the regex engine finds fast;
    # that the match starts a line is checked here.
    delimiter = re.compile(
        rb"--" + re.escape(boundary.encode("latin-1")) + rb"(--)?[ \t]*$", re.MULTILINE
    )
    parts: list[tuple[int, int]] = []
    part_start: int | None = None
    for match in delimiter.finditer(raw, start, end):
        if match.start() != start and raw[match.start() - 1] != 10:  # not at a line start
            continue
        if part_start is not None:
            parts.append((part_start, max(part_start, match.start() - 1)))
            if len(parts) > MAX_PARTS:
                return parts  # the walk refuses the mail before it gets this far
        if match.group(1):
            return parts
        part_start = min(match.end() + 1, end)
    if part_start is not None:
        parts.append((part_start, end))
    return parts


# --- bodies --------------------------------------------------------------------------------


def _decode_entity(walk: _Walk, entity: _Entity) -> tuple[str, str]:
    """The text of a leaf entity and the charset it was read in."""
    payload = walk.raw[entity.body_start : entity.body_end]
    if entity.transfer_encoding == "base64":
        payload = _base64(payload)
    elif entity.transfer_encoding == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    if len(payload) > MAX_TEXT_BYTES:
        raise RequestError(1, f"text part larger than {MAX_TEXT_BYTES} bytes")
    text, charset = _decode_text(payload, _param(entity.params, "charset"), walk.default_codec)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.removeprefix("\ufeff"), charset


def _base64(data: bytes) -> bytes:
    """Decode base64 leniently: stray characters skipped, broken padding repaired."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        clean = _NOT_BASE64.sub(b"", data)
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


def _decode_text(data: bytes, declared: str | None, default_codec: str) -> tuple[str, str]:
    """Decode body bytes by the SPEC §1 charset rules; return (text, charset label)."""
    codec = _codec(declared) if declared else None
    if codec is not None:
        try:
            return data.decode(codec), charset_label(declared or codec) or codec
        except UnicodeError:
            pass  # a lying charset: detect
    if data.isascii():
        return data.decode("ascii"), "us-ascii"
    detected = _detect(data)
    if detected is not None:
        return data.decode(detected), _LABELS[codecs.lookup(detected).name]
    try:
        text = data.decode(default_codec)
    except UnicodeError:
        raise RequestError(1, "the text cannot be decoded in any charset") from None
    return text, _LABELS.get(default_codec, default_codec)


@functools.lru_cache(maxsize=128)
def _codec(label: str) -> str | None:
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


def _detect(data: bytes) -> str | None:
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


def _command(text: str) -> str:
    """The ``[text]…[/text]`` block, else the text without its trailing signature."""
    opening = _TEXT_OPEN.search(text)
    if opening is not None:
        closing = _TEXT_CLOSE.search(text, opening.end())
        return text[opening.end() : closing.start() if closing else len(text)]
    delimiters = [match.start() for match in _SIGNATURE.finditer(text)]
    return text[: delimiters[-1]] if delimiters else text


# --- headers -------------------------------------------------------------------------------


def _header_text(value: bytes, fallback_codec: str) -> str:
    """A raw header value as text: ASCII, else UTF-8, else detected, else the fallback."""
    if value.isascii():
        text = value.decode("ascii")
    else:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode(_detect(value) or fallback_codec, "replace")
    return _HEADER_CONTROLS.sub(" ", text).strip()


def _decode_subject(value: bytes, fallback_codec: str) -> str:
    """The Subject with raw 8-bit bytes and RFC 2047 encoded words decoded."""
    text = _header_text(value, fallback_codec)
    if "=?" not in text:
        return text
    out: list[str] = []
    run_codec: str | None = None
    run: list[bytes] = []

    def flush() -> None:
        if run:
            out.append(b"".join(run).decode(run_codec or fallback_codec, "replace"))
            run.clear()

    position = 0
    for word in _ENCODED_WORD.finditer(text):
        between = text[position : word.start()]
        if between and not (run and between.isspace()):
            flush()
            out.append(between)
        charset, encoding, encoded = word.groups()
        codec = _codec(charset.split("*", 1)[0]) or fallback_codec
        if codec != run_codec:
            flush()
            run_codec = codec
        raw = encoded.encode("utf-8")
        run.append(_base64(raw) if encoding in "bB" else binascii.a2b_qp(raw, header=True))
        position = word.end()
    flush()
    out.append(text[position:])
    return _HEADER_CONTROLS.sub(" ", "".join(out)).strip()


def _from_address(value: str) -> str:
    """The addr-spec of a From value: ``<…>``, else the first word with ``@``, else the first."""
    text = _QUOTED_STRING.sub(" ", value[:_MAX_FROM_CHARS])
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
