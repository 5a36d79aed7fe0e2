"""SMS from phones to e-mail: part reassembly, whom to mail, and the mail itself.

Pure decisions over plain values; storage keeps the parts and the rows, the
mailer sends what :func:`inbound_mail` composes.

Decisions where the SPEC is silent:

* Parts of one concatenated SMS belong together when they come from the same
  provider, phone and destination with the same reference and total
  (:class:`PartKey`). A part whose sequence is already stored is a repeat
  (the SMSC sent it again after a lost ``deliver_sm_resp``) and changes
  nothing. The message is whole when every sequence ``1..total`` is there.
* A message still missing parts :data:`PART_WAIT_S` after its first part is
  mailed with what arrived, each missing part written ``[…]``: a lost part
  must not swallow the rest. A part arriving after that starts a new message.
* The mail goes to the envelope sender of the most recent request that sent
  an SMS to that phone within ``[inbound] reply_window_s`` (so a reply to an
  alert goes back to the system that sent the alert), else to
  ``[inbound] mail_to``, else nowhere: the SMS is kept and shown in
  ``mailbridge queue``. A request's null sender (``<>``) or a
  ``mailer-daemon`` sender cannot be mailed and falls through.
* The mail: ``From:`` the phone at the gateway's first mail domain
  (``+79991234567@sms.example.com``, which is also a number address when
  ``[number_addresses]`` is on, so answering it sends an SMS back);
  ``Subject:`` the first words of the text, at most :data:`SUBJECT_MAX`
  characters, cut at a word; ``In-Reply-To``/``References`` the original
  mail's ``Message-ID`` when the request has a reply thread;
  ``Auto-Submitted: auto-generated`` (RFC 3834). The body is the text, then
  a signature block naming the phone, the number it was sent to, when it
  arrived and the request it answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "GAP",
    "PART_WAIT_S",
    "SUBJECT_MAX",
    "InboundMail",
    "InboundRoute",
    "LastRequest",
    "PartKey",
    "StoredPart",
    "assemble",
    "inbound_mail",
    "inbound_route",
    "inbound_subject",
    "is_whole",
    "part_window_open",
    "phone_address",
    "phone_key",
]

#: Longest wait for the missing parts of a concatenated SMS before it is mailed as it is.
PART_WAIT_S = 600.0
#: How a missing part is written in a message mailed without it.
GAP = "[…]"
#: Longest subject taken from the text.
SUBJECT_MAX = 60

_MAILABLE_RE = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
_PHONE_LOCAL_RE = re.compile(r"[^A-Za-z0-9+._-]")
_SPACES_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True, kw_only=True)
class PartKey:
    """Which concatenated message a part belongs to."""

    provider: str
    source: str
    destination: str
    reference: int
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredPart:
    """One stored part: its 1-based sequence, its text, when it arrived."""

    sequence: int
    text: str
    received_at: datetime


def part_window_open(first_received: datetime, now: datetime) -> bool:
    """Whether a message whose first part came at ``first_received`` still waits for parts."""
    return now - first_received < timedelta(seconds=PART_WAIT_S)


def is_whole(parts: Sequence[StoredPart], total: int) -> bool:
    """Whether every sequence ``1..total`` is among ``parts``."""
    have = {p.sequence for p in parts}
    return all(i in have for i in range(1, total + 1))


def assemble(parts: Sequence[StoredPart], total: int) -> str:
    """The text of the parts in sequence order; a missing one is :data:`GAP`, a repeat ignored.

    Sequences outside ``1..total`` (a broken UDH) are appended after the others.
    """
    by_seq: dict[int, str] = {}
    extra: list[StoredPart] = []
    for part in parts:
        if 1 <= part.sequence <= total:
            by_seq.setdefault(part.sequence, part.text)
        else:
            extra.append(part)
    pieces = [by_seq.get(i, GAP) for i in range(1, total + 1)]
    pieces.extend(p.text for p in sorted(extra, key=lambda p: p.sequence))
    return "".join(pieces)


@dataclass(frozen=True, slots=True, kw_only=True)
class LastRequest:
    """The most recent request that sent an SMS to the phone, as storage found it."""

    request_id: str
    mail_from: str
    #: When its SMS to this phone was taken by a provider.
    sent_at: datetime
    #: The original mail's Message-ID, when the request has a reply thread ("" otherwise).
    in_reply_to: str = ""
    references: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundRoute:
    """Where one inbound SMS is mailed; ``to`` None: kept, shown in ``queue``."""

    to: str | None
    #: The request it answers (None when it went to ``mail_to`` or was kept).
    request_id: str | None = None
    in_reply_to: str = ""
    references: str = ""


def _mailable(address: str) -> bool:
    addr = address.strip()
    if not _MAILABLE_RE.fullmatch(addr):
        return False
    return addr.rpartition("@")[0].lower() != "mailer-daemon"


def inbound_route(
    last: LastRequest | None, *, now: datetime, window_s: float, mail_to: str | None
) -> InboundRoute:
    """Whom an SMS from a phone is mailed to (see the module docstring)."""
    if (
        last is not None
        and now - last.sent_at <= timedelta(seconds=window_s)
        and _mailable(last.mail_from)
    ):
        return InboundRoute(
            to=last.mail_from.strip(),
            request_id=last.request_id,
            in_reply_to=last.in_reply_to,
            references=last.references or last.in_reply_to,
        )
    if mail_to:
        return InboundRoute(to=mail_to)
    return InboundRoute(to=None)


def inbound_subject(text: str, *, limit: int = SUBJECT_MAX) -> str:
    """The first words of ``text`` on one line, at most ``limit`` characters, ``…`` when cut."""
    flat = _SPACES_RE.sub(" ", _CONTROL_RE.sub(" ", text)).strip()
    if not flat:
        return "SMS"
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def phone_key(source: str) -> str:
    """The form SMS rows store a number in (E.164), for matching an inbound SMS's phone.

    ``+`` and digits stay as they are; 10 to 15 bare digits (an international
    number given without its ``+``) get one; anything else is kept as it came.
    """
    text = source.strip()
    if text.isascii() and text.isdigit() and 10 <= len(text) <= 15:
        return "+" + text
    return text


def phone_address(number: str, domain: str) -> str:
    """The phone as a mail address at the gateway's domain (``+79991234567@sms.example.com``).

    Characters that cannot stand in a plain local part are dropped; an empty
    result is ``unknown``.
    """
    local = _PHONE_LOCAL_RE.sub("", number).strip(".")[:64] or "unknown"
    return f"{local}@{domain.strip().rstrip('.').lower() or 'localhost'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMail:
    """The mail one inbound SMS becomes; the mailer turns it into RFC 5322 text."""

    from_address: str
    to: str
    subject: str
    in_reply_to: str
    references: str
    body: str
    auto_submitted: str = "auto-generated"


def inbound_mail(
    *,
    text: str,
    source: str,
    destination: str,
    received_at: datetime,
    route: InboundRoute,
    domain: str,
) -> InboundMail:
    """Compose the mail of an inbound SMS routed to ``route.to`` (which must be set)."""
    if route.to is None:
        raise ValueError("an inbound SMS that is kept has no mail")
    body_text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    about = [f"SMS from {source} to {destination}" if destination else f"SMS from {source}"]
    about.append(f"received {received_at.strftime('%Y-%m-%d %H:%M:%S UTC')}")
    if route.request_id is not None:
        about.append(f"in reply to request ID - {route.request_id}")
    body = f"{body_text}\n\n-- \n" + "\n".join(about) + "\n"
    return InboundMail(
        from_address=phone_address(source, domain),
        to=route.to,
        subject=inbound_subject(text),
        in_reply_to=route.in_reply_to,
        references=route.references,
        body=body,
    )
