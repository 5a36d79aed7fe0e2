"""Read the bytes of one e-mail into a :class:`~mailbridge.models.MailContent` (SPEC §1).

What is read
    The text is the first ``text/plain`` part that is not an attachment
    (``Content-Disposition: attachment``) and not blank; else the first
    ``text/html`` part rendered to text (:mod:`mailbridge.core.mail.html`); else a
    blank ``text/plain`` part; else nothing (empty text). Parts are walked
    depth first in mail order through any ``multipart/*``; a
    ``message/rfc822`` part is somebody else's mail and is not entered.
    Transfer encodings (base64, quoted-printable, uuencode, 7bit/8bit/binary)
    and RFC 2047 encoded words are decoded; line breaks become LF; a leading
    byte-order mark is dropped.

Parsing
    The standard :mod:`email` package does the MIME work:
    ``BytesParser(policy=compat32)`` builds the tree (``policy.default`` is
    about ten times slower), ``get_payload()`` walks it and
    ``get_payload(decode=True)`` undoes the transfer encoding;
    ``get_content_type()``, ``get_content_disposition()`` and
    ``get_param("charset")`` with :func:`email.utils.collapse_rfc2231_value`
    read the part headers; :func:`email.header.decode_header` decodes the
    Subject and :func:`email.utils.parseaddr` reads ``From``. What is added
    here is leniency where those are strict (a type or disposition followed by
    blanks instead of ``;``, a quoted or padded transfer encoding) and the
    guards below, where they are slow.

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
    joined before decoding so a character split between words survives; an
    unknown charset decodes in the body's charset, a broken word leaves the
    Subject as it is, never an error; of a Subject longer than 2048
    characters only those are decoded, up to the last blank in them).
    ``from_address`` is the addr-spec of ``From`` as ``parseaddr`` reads it
    from the first 1024 characters; where that fails (nested comments, an
    unclosed quote, blanks in the result) the
    ``<…>`` part, else the first word with ``@``, else the first word.
    ``message_id``, ``auto_submitted``, ``precedence`` and ``list_id`` are
    the raw values, unfolded and stripped. In every header value control
    characters (CR, LF, TAB, NUL, …) and Unicode line separators become
    spaces, so no value taken from a mail can break a header line of the reply.

Hostile mail
    Any bytes give a ``MailContent`` or a ``RequestError(1)``; time and memory
    are bounded by these caps:

    ==========================  =====================================
    ``MAX_MAIL_BYTES``          10 MiB of raw mail
    ``MAX_HEADER_BYTES``        64 KiB of header lines, all parts together
    (5000 header lines)         the same, in lines
    ``MAX_DEPTH``               10 nested ``multipart`` levels
    ``MAX_PARTS``               100 MIME entities walked
    ``MAX_TEXT_BYTES``          1 MiB of decoded text in one part
    ==========================  =====================================

    The walk stops at the first usable ``text/plain`` part, so what follows
    it (a giant attachment, a MIME bomb) does not change the answer; a cap
    exceeded before that is ``RequestError(1)``.

    The standard parser has slow paths of its own: every line costs one
    boundary test per enclosing ``multipart`` (0.1 µs; a 300-level bomb of
    16 KB takes 28 ms, 1000 levels raise RecursionError), a header line about
    1.5 µs, a part about 7 µs, a paragraph of a ``message/delivery-status``
    part as much (it becomes a message), and ``get_param`` is quadratic in a
    value full of ``;`` (38 ms for 8 KB), which the parser itself calls for
    every multipart boundary. So one scan before parsing finds every line
    that declares a ``multipart/*`` or ``message/*`` Content-Type (in a
    header, or quoted in a body: the scan cannot tell), the delimiter lines
    of their boundaries (as ``get_boundary`` reads them) and the header
    blocks after those, and the parser is given the mail only up to the
    first of:

    * the 51st declaration, one longer than 1024 bytes or with more than 16
      ``;``, or a ``message/delivery-status`` one (a part that holds no text);
    * the header block after the 201st delimiter line, or the one that takes
      the header lines of the mail over 64 KiB or 5000 lines;
    * the 200 001st line, or the line where (lines) × (multipart
      declarations) passes 50 000.

    A mail cut short is read only if its text part lies wholly before the cut
    (another part starts after it); otherwise it is ``RequestError(1)``. A
    first header block over the caps is refused before parsing, and an
    exception of the parser (RecursionError) is ``RequestError(1)``.
    ``get_param`` reads only a Content-Type of at most 1024 bytes and 16
    ``;`` (a longer one has its charset found by a bounded pattern);
    ``decode_header`` and ``parseaddr`` get bounded input, and an exception
    of theirs falls back as described under Headers. The charset parameter
    and the address of recurring header values are cached.
"""

from __future__ import annotations

import codecs
import functools
import math
import re
from collections import Counter
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, parseaddr

import charset_normalizer

from mailbridge.core.mail.html import html_to_text
from mailbridge.errors import RequestError
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

# --- guards in front of the standard parser ------------------------------------------------

_PARSER = BytesParser(policy=compat32)

#: The first header block as :mod:`email.feedparser` sees it: lines that start
#: a field (``name:``), continue one (leading blank) or are an mbox ``From ``
#: line. The first other line ends the headers.
_HEADER_BLOCK = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\n]*(?:\n|\Z))*")

#: A ``Content-Type`` line with its continuation lines, searched in
#: ``b"\n" + mail.lower()``, so the match starts at the line's offset in the mail.
_CONTENT_TYPE_LINE = re.compile(rb"\ncontent-type:([^\n]*+(?:\n[ \t][^\n]*+)*+)")
_MAX_CONTAINERS = 50
_MAX_DELIMITERS = 2 * MAX_PARTS
_MAX_LINES = 200_000
_MAX_LINE_LEVELS = 50_000
#: The parser spends about 1.5 µs on a header line, 0.2 µs on a body line.
_MAX_HEADER_LINES = 5000
#: ``get_param`` is quadratic in the length of a value with many ``;``.
_MAX_PARAM_HEADER = 1024
_MAX_PARAM_SEMICOLONS = 16
_CHARSET_PARAM = re.compile(r';[ \t\n]*+charset[ \t\n]*+=[ \t\n]*+"?([^";\s]{1,40})', re.I)

# --- text ----------------------------------------------------------------------------------

_TEXT_OPEN = re.compile(r"\[text\]", re.IGNORECASE | re.ASCII)
_TEXT_CLOSE = re.compile(r"\[/text\]", re.IGNORECASE | re.ASCII)
_SIGNATURE = re.compile(r"^-- $", re.MULTILINE)

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


@dataclass(slots=True, kw_only=True)
class _Walk:
    """State of one walk through the parsed MIME tree."""

    default_codec: str
    parts: int = 0
    blank_plain: tuple[str, str] | None = None
    html: Message | None = None


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
    block = _HEADER_BLOCK.match(data, 0, MAX_HEADER_BYTES + 1)
    header_bytes = block.end() if block is not None else 0
    if header_bytes > MAX_HEADER_BYTES:
        raise RequestError(1, f"more than {MAX_HEADER_BYTES} bytes of headers")
    header_lines = data.count(b"\n", 0, header_bytes)
    if header_lines > _MAX_HEADER_LINES:
        raise RequestError(1, f"more than {_MAX_HEADER_LINES} header lines")
    cut = _parse_limit(data, header_bytes, header_lines)
    try:
        root = _PARSER.parsebytes(data[:cut] if cut < len(data) else data)
    except Exception:  # RecursionError or worse on a mail the guards let through
        raise RequestError(1, "the MIME structure cannot be parsed") from None
    walk = _Walk(default_codec=default_codec)
    found = _walk_entity(walk, root, depth=0)
    if cut < len(data):
        if found is None or found[0] is _last_entity(root):
            raise RequestError(1, "the text is not within the MIME caps")
    elif found is None and walk.html is not None:
        markup, charset = _decode_part(walk, walk.html)
        found = (walk.html, html_to_text(markup), charset)
    if found is not None:
        text, charset = found[1], found[2]
    else:
        text, charset = walk.blank_plain or ("", "us-ascii")
    body_codec = _codec(charset)
    header_codec = body_codec if body_codec not in (None, "ascii") else default_codec
    fields = _top_fields(root)

    def header(name: str) -> str:
        return _header_text(fields.get(name, b""), header_codec)

    return MailContent(
        subject=_decode_subject(header("subject"), header_codec),
        text=text,
        command=_command(text),
        charset=charset,
        from_address=_from_address(header("from")),
        message_id=header("message-id"),
        auto_submitted=header("auto-submitted"),
        precedence=header("precedence"),
        list_id=header("list-id"),
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


# --- guards --------------------------------------------------------------------------------


def _parse_limit(data: bytes, header_bytes: int, header_lines: int) -> int:
    """How much of ``data`` the standard parser may be given (see "Hostile mail").

    ``header_bytes`` and ``header_lines`` measure the first header block.
    """
    cut = len(data)
    containers = multiparts = 0
    delimiters: set[bytes] = set()
    #: Where header blocks start (and whether after a delimiter line, or as
    #: the header block of the mail inside a message/* part). Cutting there
    #: leaves the part before complete, and a part after it to show so.
    heads: list[tuple[int, bool]] = []
    for match in _CONTENT_TYPE_LINE.finditer(b"\n" + data.lower()):
        value = match.group(1)
        kind = value.partition(b";")[0]
        if b"multipart" not in kind and b"message" not in kind:
            continue
        containers += 1
        if (
            containers > _MAX_CONTAINERS
            or b"delivery-status" in kind
            or len(value) > _MAX_PARAM_HEADER
            or value.count(b";") > _MAX_PARAM_SEMICOLONS
        ):
            cut = match.start()
            break
        if b"multipart" in kind:
            multiparts += 1
            boundary = _boundary(data[match.start(1) - 1 : match.end(1) - 1])
            if boundary is not None:
                delimiters.add(b"\n--" + boundary)
        else:
            blank = data.find(b"\n\n", match.end(1) - 1)
            if blank >= 0:
                heads.append((blank + 2, False))
    for delimiter in delimiters:
        position = data.find(delimiter, 0, cut)
        for _ in range(_MAX_DELIMITERS + 1):
            if position < 0:
                break
            line_end = data.find(b"\n", position + 1, cut)
            heads.append((cut if line_end < 0 else line_end + 1, True))
            position = data.find(delimiter, position + 1, cut)
    delimiter_lines = 0
    for head, after_delimiter in sorted(heads):
        if head >= cut:
            break
        delimiter_lines += after_delimiter
        start = head + 1 if data[head : head + 1] == b"\n" else head  # a digest's own mail
        block = _HEADER_BLOCK.match(data, start, min(cut, start + MAX_HEADER_BYTES + 1))
        end = block.end() if block is not None else start
        header_bytes += end - start
        header_lines += data.count(b"\n", start, end)
        if (
            delimiter_lines > _MAX_DELIMITERS
            or header_bytes > MAX_HEADER_BYTES
            or header_lines > _MAX_HEADER_LINES
        ):
            cut = head
            break
    max_lines = min(_MAX_LINES, _MAX_LINE_LEVELS // multiparts) if multiparts else _MAX_LINES
    if data.count(b"\n", 0, cut) > max_lines:
        cut = _line_start(data, max_lines)
    return cut


def _boundary(value: bytes) -> bytes | None:
    """The boundary the standard parser reads from a multipart ``Content-Type`` value."""
    header = Message()
    header["Content-Type"] = value.decode("ascii", "surrogateescape")
    try:
        boundary = header.get_boundary()
        return None if boundary is None else boundary.encode("ascii", "surrogateescape")
    except Exception:  # a value get_boundary cannot read: the parser cannot either
        return None


def _line_start(data: bytes, lines: int) -> int:
    """The offset just after the ``lines``-th LF of ``data`` (there are more than that)."""
    low, high, before = 0, len(data), 0  # `before`: the LFs in data[:low]
    while low < high:  # the least offset whose prefix holds `lines` LFs
        middle = (low + high) // 2
        here = before + data.count(b"\n", low, middle)
        if here < lines:
            low, before = middle + 1, here + (data[middle] == 10)
        else:
            high = middle
    return low


def _last_entity(root: Message) -> Message:
    """The entity of a parsed mail that starts last."""
    last = root
    for last in root.walk():  # noqa: B007 - the last one is wanted
        pass
    return last


# --- the MIME walk -------------------------------------------------------------------------


def _walk_entity(walk: _Walk, entity: Message, *, depth: int) -> tuple[Message, str, str] | None:
    """Walk ``entity`` depth first; return the first usable text/plain, its text and charset."""
    walk.parts += 1
    if walk.parts > MAX_PARTS:
        raise RequestError(1, f"more than {MAX_PARTS} MIME parts")
    content_type = _content_type(entity)
    if content_type.startswith("multipart/"):
        if depth >= MAX_DEPTH:
            raise RequestError(1, f"MIME parts nested deeper than {MAX_DEPTH}")
        if entity.is_multipart():  # else the boundary is missing or never seen
            for child in entity.get_payload():
                if not isinstance(child, Message):  # never from the parser
                    continue
                found = _walk_entity(walk, child, depth=depth + 1)
                if found is not None:
                    return found
        return None
    if entity.is_multipart():  # message/rfc822: somebody else's mail, not entered
        return None
    if _first_word(entity.get_content_disposition()) == "attachment":
        return None
    if content_type == "text/plain":
        text, charset = _decode_part(walk, entity)
        if text.strip():
            return entity, text, charset
        if walk.blank_plain is None:
            walk.blank_plain = (text, charset)
    elif content_type == "text/html" and walk.html is None:
        walk.html = entity
    return None


def _content_type(entity: Message) -> str:
    """``get_content_type()``, also where blanks instead of ``;`` follow the type."""
    kind = _first_word(entity.get_content_type())
    if kind.count("/") != 1 or kind.startswith("/") or kind.endswith("/"):
        return entity.get_default_type()
    return kind


def _first_word(value: str | None) -> str:
    """The first blank-separated word of ``value``, or ''."""
    words = value.split(None, 1) if value else ()
    return words[0] if words else ""


def _decode_part(walk: _Walk, part: Message) -> tuple[str, str]:
    """The text of a leaf part and the charset it was read in."""
    encoding = part.get("content-transfer-encoding")
    if encoding is not None:  # get_payload wants the bare lower-case name
        clean = str(encoding).strip().strip('"').strip().lower()
        if clean != str(encoding).lower():
            part.replace_header("content-transfer-encoding", clean)
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        raise RequestError(1, "the transfer encoding cannot be undone") from None
    if not isinstance(payload, bytes):
        payload = b""
    if len(payload) > MAX_TEXT_BYTES:
        raise RequestError(1, f"text part larger than {MAX_TEXT_BYTES} bytes")
    text, charset = _decode_text(payload, _declared_charset(part), walk.default_codec)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.removeprefix("\ufeff"), charset


def _declared_charset(part: Message) -> str | None:
    """The ``charset`` parameter of the part's Content-Type, RFC 2231 forms included."""
    header = part.get("content-type")
    if header is None:
        return None
    value = str(header)
    if len(value) > _MAX_PARAM_HEADER or value.count(";") > _MAX_PARAM_SEMICOLONS:
        match = _CHARSET_PARAM.search(value)  # get_param would be quadratic here
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


def _top_fields(root: Message) -> dict[str, bytes]:
    """The first value of each reply-relevant header of the mail, raw bytes, unfolded."""
    fields: dict[str, bytes] = {}
    for name, value in root.raw_items():
        key = name.rstrip(" \t").lower()
        if key in _TOP_FIELDS and key not in fields:
            text = str(value).replace("\n", "").strip(" \t")
            fields[key] = text.encode("utf-8", "surrogateescape")
    return fields


def _decode_subject(text: str, fallback_codec: str) -> str:
    """The Subject (already read as text) with its RFC 2047 encoded words decoded."""
    if "=?" not in text:
        return text
    head, tail = text, ""
    if len(text) > _MAX_DECODED_SUBJECT:
        end = text.rfind(" ", 0, _MAX_DECODED_SUBJECT)
        end = end if end > 0 else _MAX_DECODED_SUBJECT
        head, tail = text[:end], text[end:]
    out: list[str] = []
    try:
        for chunk, charset in decode_header(head):
            if isinstance(chunk, str):  # no encoded word at all
                out.append(chunk)
            elif charset is None:  # text between words, as raw-unicode-escape bytes
                out.append(_unencoded(chunk, ascii_only=head.isascii()))
            else:  # an RFC 2231 language suffix (utf-8*ru) is no part of the name
                codec = _codec(charset.split("*", 1)[0]) or fallback_codec
                out.append(chunk.decode(codec, "replace"))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text  # a broken base64 word: the Subject stays as it came
    return _HEADER_CONTROLS.sub(" ", "".join(out) + tail).strip()


def _unencoded(chunk: bytes, *, ascii_only: bool) -> str:
    """Text that ``decode_header`` returns between encoded words, back as a string."""
    if not ascii_only:
        try:
            return chunk.decode("raw-unicode-escape")
        except UnicodeDecodeError:  # a literal backslash-u in the text
            pass
    return chunk.decode("latin-1")


def _from_address(value: str) -> str:
    """The addr-spec of a From value, as ``parseaddr`` reads it where it can."""
    return _address(value[:_MAX_FROM_CHARS])


@functools.lru_cache(maxsize=256)
def _address(value: str) -> str:
    """:func:`_from_address` of at most ``_MAX_FROM_CHARS`` (senders recur)."""
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
