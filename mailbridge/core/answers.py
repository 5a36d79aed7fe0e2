"""The result lines of SPEC §2 and the SMTP replies that carry them.

Exactly::

    OK - <n> SMS, ID - <id>
    ERROR = <N> (<description>)                 # N in 1, 2, 4, 5, 9
    ERROR = <N> (<description>), ID - <id>      # N in 3, 6, 7, 8

An error that carries an ID is written without it when no ID is known yet.
A request ID must be printable ASCII without spaces, so nothing taken from a
mail can break a line of a reply (ValueError otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mailbridge.errors import ERROR_DESCRIPTIONS, ERRORS_WITH_ID

__all__ = [
    "ResultLine",
    "error_line",
    "ok_line",
    "ok_line_all",
    "parse_result_line",
    "smtp_reply",
]

_SAFE_ID = re.compile(r"[!-~]+")
_OK_RE = re.compile(r"OK - (\d+) SMS, ID - ([!-~]+)", re.ASCII)
_ERROR_RE = re.compile(r"ERROR = (\d+) \((.*)\)(?:, ID - ([!-~]+))?", re.ASCII)
_SMTP_PREFIX_RE = re.compile(r"[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?", re.ASCII)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultLine:
    """A result line read back: ``number`` is ``n`` of an OK line, ``N`` of an error."""

    ok: bool
    number: int
    request_id: str | None
    description: str = ""


def _check_id(request_id: str) -> str:
    if not _SAFE_ID.fullmatch(request_id):
        raise ValueError("a request ID must be printable ASCII without spaces")
    return request_id


def ok_line(n: int, request_id: str) -> str:
    """``OK - <n> SMS, ID - <id>``."""
    if n < 0:
        raise ValueError("the SMS count cannot be negative")
    return f"OK - {n} SMS, ID - {_check_id(request_id)}"


def ok_line_all(n: int, request_ids: Sequence[str]) -> str:
    """``OK - <n> SMS, ID - <id>, <id>, …``: the answer to a mail that made several requests
    (SPEC §3, one mail to several kinds of recipient); with one id, :func:`ok_line`."""
    if len(request_ids) == 1:
        return ok_line(n, request_ids[0])
    return f"OK - {n} SMS, ID - {', '.join(request_ids)}"


def error_line(code: int, request_id: str | None = None) -> str:
    """``ERROR = N (description)``, with ``, ID - <id>`` for 3, 6, 7, 8 when the ID is known."""
    try:
        description = ERROR_DESCRIPTIONS[code]
    except KeyError:
        raise ValueError(f"unknown SMSC error number {code}") from None
    line = f"ERROR = {code} ({description})"
    if code in ERRORS_WITH_ID and request_id is not None:
        line += f", ID - {_check_id(request_id)}"
    return line


def smtp_reply(line: str, *, reject: bool, code: int | None) -> str:
    """The SMTP reply to the end of DATA carrying ``line``.

    ``code`` is the error number of the line (None for OK). Accepted:
    ``250 2.0.0 <line>``. Rejected (``reject`` and an error):
    ``550 5.7.1 <line>``, or ``450 4.7.1 <line>`` for error 4 (the IP block
    is temporary).
    """
    if "\r" in line or "\n" in line:
        raise ValueError("a reply line cannot hold a line break")
    if reject and code is not None:
        if code == 4:
            return f"450 4.7.1 {line}"
        return f"550 5.7.1 {line}"
    return f"250 2.0.0 {line}"


def parse_result_line(line: str) -> ResultLine:
    """Read a result line back (an SMTP code and enhanced status before it are skipped).

    Raises ValueError for anything that is not a result line.
    """
    text = line.strip()
    prefix = _SMTP_PREFIX_RE.match(text)
    if prefix:
        text = text[prefix.end() :]
    if match := _OK_RE.fullmatch(text):
        return ResultLine(ok=True, number=int(match[1]), request_id=match[2])
    if match := _ERROR_RE.fullmatch(text):
        return ResultLine(ok=False, number=int(match[1]), request_id=match[3], description=match[2])
    raise ValueError("not an SMSC result line")
