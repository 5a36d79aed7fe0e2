"""Frozen values shared by the core and the shell.

Times are always timezone-aware ``datetime`` in UTC; the core never reads a
clock, callers pass ``now``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "AttemptOutcome",
    "Command",
    "CommandEntry",
    "Encoding",
    "Format",
    "InboundState",
    "MailContent",
    "Message",
    "OnError",
    "ReplyState",
    "RouteKind",
    "SmsRequest",
    "SmsState",
    "Split",
]


class Format(enum.IntEnum):
    """The SMSC ``format`` field (SPEC §1)."""

    SMS = 0
    FLASH = 1
    WAP_PUSH = 2
    HLR = 3
    BINARY = 4
    BINARY_HEX = 5
    PING = 6
    MMS = 7
    EMAIL = 8
    VOICE = 9
    VIBER = 10
    WHATSAPP = 11
    SOCIAL = 12


class Encoding(enum.StrEnum):
    """How the text of an SMS travels: it decides the part sizes."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"
    BINARY = "binary"


class SmsState(enum.StrEnum):
    """Life of one (message, recipient) row (SPEC §4)."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class AttemptOutcome(enum.StrEnum):
    """How one try of a row ended: the ``outcome`` of a ``delivery`` log line (SPEC §4).

    Stored attempts (``mailbridge queue show``) use the first three.
    """

    SENT = "sent"
    TEMPORARY = "temporary"  # failed; retried, or failed over to the next provider
    PERMANENT = "permanent"  # the provider refused it for good
    DEFERRED = "deferred"  # not tried: every provider on its route is paused
    FAILED = "failed"  # not tried: no provider carries its format
    EXPIRED = "expired"  # not tried: its validity ended


class InboundState(enum.StrEnum):
    """Life of one SMS from a phone and its mail (``mailbridge queue inbound``)."""

    QUEUED = "queued"
    SENDING = "sending"  # leased by a mailer
    SENT = "sent"  # the smarthost took its mail
    KEPT = "kept"  # no one to mail it to


class ReplyState(enum.StrEnum):
    """Life of one queued reply mail (SPEC §4)."""

    QUEUED = "queued"
    SENDING = "sending"  # leased by a mailer
    SENT = "sent"  # the smarthost took it
    DROPPED = "dropped"  # the smarthost refused it for good (5xx)


class RouteKind(enum.StrEnum):
    """The three kinds of mailbox, and so the mode of a mail (SPEC §1, §3)."""

    COMMAND = "command"
    FORWARD = "forward"
    NUMBER = "number"


class OnError(enum.StrEnum):
    """``[smtp] on_error``: how a mail that sends nothing is answered (SPEC §2)."""

    REPLY = "reply"  # a 250 and a reply mail
    REJECT = "reject"  # the SMTP answer only


@dataclass(frozen=True, slots=True, kw_only=True)
class MailContent:
    """What the core reads out of the bytes of one e-mail.

    ``text`` is the decoded body (first text/plain, else text/html rendered),
    line breaks normalised to LF. ``command`` is the part of it that carries
    the command: the ``[text]…[/text]`` block when present, else ``text``
    with a trailing RFC 3676 signature removed.
    """

    subject: str
    text: str
    command: str
    charset: str
    from_address: str = ""
    message_id: str = ""
    auto_submitted: str = ""
    precedence: str = ""
    list_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandEntry:
    """One ``<phones>:<mes>`` pair as written in the mail (not yet validated)."""

    phones: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """The SMSC grammar split into its fields, still as strings (SPEC §1).

    ``entries`` holds one entry in single mode, one per line in list mode.
    ``subject``/``voice``/``param`` are the trailing ``subj:``/``voice:``/``~~~``
    parameters, taken off the text.
    """

    login: str
    psw: str
    id: str
    time: str
    tz: str
    translit: str
    format: str
    sender: str
    test: str
    entries: tuple[CommandEntry, ...]
    list_mode: bool = False
    subject: str | None = None
    voice: str | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """A text cut into SMS parts: joining ``parts`` gives the text back."""

    encoding: Encoding
    parts: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One text (after prefix removal and transliteration) to its recipients.

    ``recipients`` are E.164 numbers (``+79991234567``), ``#id`` Telegram
    recipients or e-mail addresses (format 8), deduplicated, in mail order.
    """

    text: str
    recipients: tuple[str, ...]
    split: Split

    @property
    def sms_count(self) -> int:
        return self.split.count * len(self.recipients)


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsRequest:
    """A validated request, ready to be stored and charged."""

    account: str
    client_id: str | None
    due: datetime
    translit: int
    format: Format
    sender: str
    test: int
    messages: tuple[Message, ...]
    subject: str | None = None
    voice: str | None = None
    param: str | None = None
    bot: bool = False
    mode: RouteKind = RouteKind.COMMAND

    @property
    def sms_count(self) -> int:
        """``n`` of the answer: Σ parts × recipients."""
        return sum(m.sms_count for m in self.messages)

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(r for m in self.messages for r in m.recipients)
