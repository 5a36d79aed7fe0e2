"""Caps and the scan in front of the standard parser, so hostile mail costs bounded time.

The caps and why they are what they are: :mod:`mailbridge.core.mail`.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

__all__ = [
    "CHARSET_PARAM",
    "HEADER_BLOCK",
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_LINES",
    "MAX_MAIL_BYTES",
    "MAX_PARAM_HEADER",
    "MAX_PARAM_SEMICOLONS",
    "MAX_PARTS",
    "MAX_TEXT_BYTES",
    "PARSER",
    "last_entity",
    "parse_limit",
]

MAX_MAIL_BYTES = 10 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_DEPTH = 10
MAX_PARTS = 100
MAX_TEXT_BYTES = 1024 * 1024

# --- guards in front of the standard parser ------------------------------------------------

PARSER = BytesParser(policy=compat32)

#: The first header block as :mod:`email.feedparser` sees it: lines that start
#: a field (``name:``), continue one (leading blank) or are an mbox ``From ``
#: line. The first other line ends the headers.
HEADER_BLOCK = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\n]*(?:\n|\Z))*")

#: A ``Content-Type`` line with its continuation lines, searched in
#: ``b"\n" + mail.lower()``, so the match starts at the line's offset in the mail.
_CONTENT_TYPE_LINE = re.compile(rb"\ncontent-type:([^\n]*+(?:\n[ \t][^\n]*+)*+)")
_MAX_CONTAINERS = 50
_MAX_DELIMITERS = 2 * MAX_PARTS
_MAX_LINES = 200_000
_MAX_LINE_LEVELS = 50_000
#: The parser spends about 1.5 µs on a header line, 0.2 µs on a body line.
MAX_HEADER_LINES = 5000
#: ``get_param`` is quadratic in the length of a value with many ``;``.
MAX_PARAM_HEADER = 1024
MAX_PARAM_SEMICOLONS = 16
CHARSET_PARAM = re.compile(r';[ \t\n]*+charset[ \t\n]*+=[ \t\n]*+"?([^";\s]{1,40})', re.I)

# --- guards --------------------------------------------------------------------------------


def parse_limit(data: bytes, header_bytes: int, header_lines: int) -> int:
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
        # find(), not ``in``: bytes ``in`` bytes raises and drops a TypeError first
        if kind.find(b"multipart") < 0 and kind.find(b"message") < 0:
            continue
        containers += 1
        if (
            containers > _MAX_CONTAINERS
            or b"delivery-status" in kind
            or len(value) > MAX_PARAM_HEADER
            or value.count(b";") > MAX_PARAM_SEMICOLONS
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
        block = HEADER_BLOCK.match(data, start, min(cut, start + MAX_HEADER_BYTES + 1))
        end = block.end() if block is not None else start
        header_bytes += end - start
        header_lines += data.count(b"\n", start, end)
        if (
            delimiter_lines > _MAX_DELIMITERS
            or header_bytes > MAX_HEADER_BYTES
            or header_lines > MAX_HEADER_LINES
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


def last_entity(root: Message) -> Message:
    """The entity of a parsed mail that starts last."""
    last = root
    for last in root.walk():  # noqa: B007 - the last one is wanted
        pass
    return last
