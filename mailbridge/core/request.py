"""A command's typed :class:`~mailbridge.core.fields.Fields` and its account → a validated request.

Checks run in the order of ``docs/architecture.md`` and the first failure
raises its ``RequestError``: id (1), time/tz (5), translit/format/test (1),
sender syntax (1) and sender allowed (6), phones (7), text (1), ``deny_text``
(6), blacklist (8). The id goes first so that a 6/7/8 answer can always
quote the command's id.

Decisions where the SPEC is silent:

* An id of digits only must be 1..2147483647 (``0``, ``2147483648`` are
  errors); other ids are ≤40 of ``A-Za-z0-9.-_``.
* Prefixes (``__CALL__:`` …) are matched case-insensitively, with optional
  blanks before the colon, and override the format field (which must still be
  valid). In list mode every message may carry a prefix; different prefixes in
  one list are an error (1); one prefix on some lines applies to the whole list.
  ``__BOT__:`` keeps the format field's format and sets ``bot``.
* An account without ``senders`` accepts any syntactically valid sender. Its
  ``default_sender`` is always allowed. Senders match case-insensitively and
  take the configured spelling. In format 8 the sender may be an e-mail address.
* Format 8 needs a ``subj:`` line (the seed calls it mandatory).
* Formats 3 (HLR) and 6 (ping) carry no text: what stands in ``<mes>`` is
  dropped. Binary formats 4/5 are not transliterated.
* ``deny_text`` patterns are searched in the text as written, the text after
  transliteration and the subject.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from mailbridge.core.encoding import split_text
from mailbridge.core.fields import MAX_ID, Checked, Fields
from mailbridge.core.grammar import split_prefix
from mailbridge.core.phones import expand_recipients, is_email, normalize_number
from mailbridge.core.translit import transliterate
from mailbridge.errors import ConfigError, RequestError
from mailbridge.models import Format, Message, SmsRequest
from mailbridge.settings import Account

__all__ = ["MAX_ID", "MAX_TEXT_LENGTH", "build_forward_request", "build_request"]

#: Longest ``<mes>`` after prefix removal, in characters.
MAX_TEXT_LENGTH = 1000

_SENDER_NAME_RE = re.compile(r"[A-Za-z0-9 \-._&!?'+]{1,11}", re.ASCII)
_SENDER_DIGITS_RE = re.compile(r"\+?\d{1,15}", re.ASCII)
_PREFIX_FORMATS: dict[str, Format | None] = {
    "CALL": Format.VOICE,
    "VIBER": Format.VIBER,
    "SOC": Format.SOCIAL,
    "MAIL": Format.EMAIL,
    "BOT": None,
    "PING": Format.PING,
    "HLR": Format.HLR,
}
_TEXTLESS = frozenset({Format.HLR, Format.PING})
_BINARY = frozenset({Format.BINARY, Format.BINARY_HEX})
_SMS = Checked(Format.SMS)


def build_request(
    fields: Fields,
    *,
    account: Account,
    now: datetime,
    region: str,
    formats: frozenset[Format],
    bots: bool = False,
) -> SmsRequest:
    """Validate a command's ``fields`` for ``account`` and build the request to store.

    ``formats`` are the formats the configured providers can carry; ``bots``
    whether one of them carries Telegram bot messages (``__BOT__:``). No
    provider adapter does yet, so the gateway passes False and a bot request
    is refused with ``ERROR = 1`` rather than accepted and sent as a plain SMS
    to a ``#id`` "number". Raises ``RequestError`` 1, 5, 6, 7 or 8 (SPEC §1/§2).
    """
    client_id = fields.client_id.get()
    due = fields.when.due(account_tz=account.tz, now=now)
    translit = fields.translit.get()
    test = fields.test.get()
    command = fields.command
    return _build(
        account=account,
        client_id=client_id,
        due=due,
        translit=translit,
        test=test,
        prefix=fields.prefix.get(),
        fmt_field=fields.format,
        raw_sender=command.sender,
        phones=[entry.phones for entry in command.entries],
        texts=list(fields.texts),
        subject=command.subject,
        voice=command.voice,
        param=command.param,
        region=region,
        formats=formats,
        bots=bots,
    )


def build_forward_request(
    *,
    account: Account,
    phones: Sequence[str],
    text: str,
    sender: str,
    now: datetime,
    region: str,
    formats: frozenset[Format],
) -> SmsRequest:
    """The request of a forward or number-address mail: ``text`` to all ``phones``, due now.

    The account's sender, phone, ``deny_text`` and blacklist rules apply
    exactly as in command mode (a prefix in the text too); there is no id,
    time, translit or test flag, and the format is SMS unless a prefix says
    otherwise.
    """
    prefix, stripped = split_prefix(text)
    return _build(
        account=account,
        client_id=None,
        due=now.astimezone(UTC),
        translit=0,
        test=0,
        prefix=prefix,
        fmt_field=_SMS,
        raw_sender=sender,
        phones=[",".join(phones)],
        texts=[stripped],
        subject=None,
        voice=None,
        param=None,
        region=region,
        formats=formats,
        bots=False,
    )


def _build(
    *,
    account: Account,
    client_id: str | None,
    due: datetime,
    translit: int,
    test: int,
    prefix: str | None,
    fmt_field: Checked[Format],
    raw_sender: str,
    phones: Sequence[str],
    texts: list[str],
    subject: str | None,
    voice: str | None,
    param: str | None,
    region: str,
    formats: frozenset[Format],
    bots: bool,
) -> SmsRequest:
    fmt = fmt_field.get()
    bot = prefix == "BOT"
    if bot and not bots:
        raise RequestError(1, "no provider carries Telegram bot messages")
    if prefix is not None and (prefixed := _PREFIX_FORMATS[prefix]) is not None:
        fmt = prefixed
    if fmt not in formats:
        raise RequestError(1, f"format {int(fmt)} is not carried by any provider")
    sender = _sender(raw_sender, account, fmt)

    recipients = [
        expand_recipients(entry, region=region, groups=account.groups, fmt=fmt, bot=bot)
        for entry in phones
    ]
    if not recipients:
        raise RequestError(7, "no recipients")

    subject = subject if fmt is Format.EMAIL else None
    if fmt is Format.EMAIL and not subject:
        raise RequestError(1, "an e-mail needs a subj: line")
    if fmt in _TEXTLESS:
        texts = ["" for _ in texts]
    for text in texts:
        if len(text) > MAX_TEXT_LENGTH:
            raise RequestError(1, "text longer than 1000 characters")
        if not text and fmt not in _TEXTLESS:
            raise RequestError(1, "empty text")
    sent = [text if fmt in _BINARY else transliterate(text, translit) for text in texts]
    splits = [split_text(text, fmt) for text in sent]

    deny = _deny_patterns(account.deny_text)
    if deny:
        written = [*texts, *sent, subject or ""]
        if any(p.search(t) for p in deny for t in written):
            raise RequestError(6, "text matches deny_text")

    blacklist = _blacklist(account.blacklist, region)
    if any(r in blacklist for rs in recipients for r in rs):
        raise RequestError(8, "recipient is blacklisted")

    return SmsRequest(
        account=account.login,
        client_id=client_id,
        due=due,
        translit=translit,
        format=fmt,
        sender=sender,
        test=test,
        messages=tuple(
            Message(text=text, recipients=rs, split=split)
            for text, rs, split in zip(sent, recipients, splits, strict=True)
        ),
        subject=subject,
        voice=voice if fmt is Format.VOICE else None,
        param=param if fmt is Format.VOICE else None,
        bot=bot,
    )


def _sender(raw: str, account: Account, fmt: Format) -> str:
    if not raw:
        return account.default_sender
    syntax_ok = (
        _SENDER_NAME_RE.fullmatch(raw) is not None
        or _SENDER_DIGITS_RE.fullmatch(raw) is not None
        or (fmt is Format.EMAIL and is_email(raw))
    )
    if not syntax_ok:
        raise RequestError(1, "invalid sender")
    if not account.senders:
        return raw
    for allowed in (*account.senders, account.default_sender):
        if allowed and allowed.casefold() == raw.casefold():
            return allowed
    raise RequestError(6, "sender not allowed for the account")


@functools.lru_cache(maxsize=256)
def _deny_patterns(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError("accounts.deny_text", f"invalid regular expression: {exc}") from exc
    return tuple(compiled)


@functools.lru_cache(maxsize=256)
def _blacklist(numbers: tuple[str, ...], region: str) -> frozenset[str]:
    result: set[str] = set()
    for number in numbers:
        try:
            result.add(normalize_number(number, region=region))
        except RequestError:
            result.add(number.strip())
    return frozenset(result)
