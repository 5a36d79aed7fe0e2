"""One mail's bytes to :class:`~mailbridge.models.MailContent`: the MIME walk,
the text part, and the command inside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from mailbridge.core.mail.charset import codec_name, declared_charset, decode_text
from mailbridge.core.mail.guards import (
    HEADER_BLOCK,
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    MAX_MAIL_BYTES,
    MAX_PARTS,
    MAX_TEXT_BYTES,
    PARSER,
    last_entity,
    parse_limit,
)
from mailbridge.core.mail.headers import (
    decode_subject,
    from_address,
    header_text,
    no_surrogates,
    top_fields,
)
from mailbridge.core.mail.html import html_to_text
from mailbridge.errors import RequestError
from mailbridge.models import MailContent

__all__ = ["read_mail"]

# --- text ----------------------------------------------------------------------------------

_TEXT_OPEN = re.compile(r"\[text\]", re.IGNORECASE | re.ASCII)
_TEXT_CLOSE = re.compile(r"\[/text\]", re.IGNORECASE | re.ASCII)
_SIGNATURE = re.compile(r"^-- $", re.MULTILINE)


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
    default_codec = codec_name(default_charset)
    if default_codec is None:
        raise ValueError(f"unknown default charset {default_charset!r}")
    if len(raw) > MAX_MAIL_BYTES:
        raise RequestError(1, f"mail larger than {MAX_MAIL_BYTES} bytes")
    data = bytes(raw)
    if data.find(b"\r") >= 0:  # find(), not ``in`` (which raises and drops a TypeError)
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    block = HEADER_BLOCK.match(data, 0, MAX_HEADER_BYTES + 1)
    header_bytes = block.end() if block is not None else 0
    if header_bytes > MAX_HEADER_BYTES:
        raise RequestError(1, f"more than {MAX_HEADER_BYTES} bytes of headers")
    header_lines = data.count(b"\n", 0, header_bytes)
    if header_lines > MAX_HEADER_LINES:
        raise RequestError(1, f"more than {MAX_HEADER_LINES} header lines")
    cut = parse_limit(data, header_bytes, header_lines)
    try:
        root = PARSER.parsebytes(data[:cut] if cut < len(data) else data)
    except Exception:  # RecursionError or worse on a mail the guards let through
        raise RequestError(1, "the MIME structure cannot be parsed") from None
    walk = _Walk(default_codec=default_codec)
    found = _walk_entity(walk, root, depth=0)
    if cut < len(data):
        if found is None or found[0] is last_entity(root):
            raise RequestError(1, "the text is not within the MIME caps")
    elif found is None and walk.html is not None:
        markup, charset = _decode_part(walk, walk.html)
        found = (walk.html, html_to_text(markup), charset)
    if found is not None:
        text, charset = found[1], found[2]
    else:
        text, charset = walk.blank_plain or ("", "us-ascii")
    body_codec = codec_name(charset)
    header_codec = body_codec if body_codec not in (None, "ascii") else default_codec
    fields = top_fields(root)

    def header(name: str) -> str:
        return header_text(fields.get(name, b""), header_codec)

    text = no_surrogates(text)  # a codec such as UTF-7 can decode to a lone surrogate
    return MailContent(
        subject=decode_subject(header("subject"), header_codec),
        text=text,
        command=_command(text),
        charset=charset,
        from_address=from_address(header("from")),
        message_id=header("message-id"),
        auto_submitted=header("auto-submitted"),
        precedence=header("precedence"),
        list_id=header("list-id"),
    )


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
    text, charset = decode_text(payload, declared_charset(part), walk.default_codec)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.removeprefix("\ufeff"), charset


def _command(text: str) -> str:
    """The ``[text]…[/text]`` block, else the text without its trailing signature."""
    opening = _TEXT_OPEN.search(text)
    if opening is not None:
        closing = _TEXT_CLOSE.search(text, opening.end())
        return text[opening.end() : closing.start() if closing else len(text)]
    delimiters = [match.start() for match in _SIGNATURE.finditer(text)]
    return text[: delimiters[-1]] if delimiters else text
