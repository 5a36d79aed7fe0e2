"""The ``<phones>`` field → recipients (SPEC §1).

Rules (SPEC §1, ``phones`` row):

* entries are separated by ``,`` or ``;``; empty entries (``a,,b``, a trailing
  comma) are skipped;
* inside one number spaces, ``-``, ``(`` and ``)`` are dropped;
* ``+digits`` is taken as is (not corrected) and must be a valid number;
* digits without ``+`` are read as a number of ``region`` (national or with
  the country code: RU ``89991234567``, ``9991234567``, ``79991234567``); when
  that gives no valid number, as an international number without its ``+``;
* ``G<n>`` is the account's group ``n``; ``#<id>`` a Telegram recipient (only
  with ``bot``); in format 8 every recipient is an e-mail address;
* any invalid entry rejects the whole field with ``RequestError(7)``, and so
  does a field with no recipient at all. Recipients are deduplicated in order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

import phonenumbers

from mailbridge.errors import RequestError
from mailbridge.models import Format

__all__ = ["expand_recipients", "is_email", "normalize_number"]

_SEPARATORS_RE = re.compile(r"[,;]")
_NUMBER_NOISE_RE = re.compile(r"[\s\-()]")
_NUMBER_RE = re.compile(r"(\+?)(\d{3,17})", re.ASCII)
_GROUP_RE = re.compile(r"[Gg](\d{1,9})", re.ASCII)
# A Telegram chat id (negative for groups) or a user name.
_TELEGRAM_RE = re.compile(r"#(-?\d{1,20}|[A-Za-z][A-Za-z0-9_]{2,63})", re.ASCII)
# RFC 5322 addr-spec, dot-atom form only: no quoted local parts, no literals.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL_RE = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})+", re.ASCII)


def is_email(value: str) -> bool:
    """Whether ``value`` is a plain ``local@domain.tld`` address."""
    return len(value) <= 254 and _EMAIL_RE.fullmatch(value) is not None


def normalize_number(raw: str, *, region: str) -> str:
    """One phone number in E.164 (``+79991234567``), or ``RequestError(7)``."""
    number = _normalize(_NUMBER_NOISE_RE.sub("", raw), region.upper())
    if number is None:
        raise RequestError(7, "invalid phone number")
    return number


@functools.lru_cache(maxsize=4096)
def _normalize(cleaned: str, region: str) -> str | None:
    m = _NUMBER_RE.fullmatch(cleaned)
    if m is None:
        return None
    plus, digits = m.groups()
    candidates = [f"+{digits}"] if plus else [digits, f"+{digits}"]
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            return e164
    return None


def expand_recipients(
    field: str,
    *,
    region: str,
    groups: Mapping[int, Sequence[str]],
    fmt: Format,
    bot: bool = False,
) -> tuple[str, ...]:
    """The recipients named by a ``<phones>`` field, deduplicated in order.

    Raises ``RequestError(7)`` for an invalid entry, an unknown group, a
    ``#id`` without ``bot``, or when nothing is left.
    """
    seen: dict[str, None] = {}
    for raw in _SEPARATORS_RE.split(field):
        entry = raw.strip()
        if not entry:
            continue
        if group := _GROUP_RE.fullmatch(entry):
            members = groups.get(int(group[1]))
            if members is None:
                raise RequestError(7, "unknown group")
            for member in members:
                seen.setdefault(_recipient(member.strip(), region=region, fmt=fmt, bot=bot))
        else:
            seen.setdefault(_recipient(entry, region=region, fmt=fmt, bot=bot))
    if not seen:
        raise RequestError(7, "no recipients")
    return tuple(seen)


def _recipient(entry: str, *, region: str, fmt: Format, bot: bool) -> str:
    if fmt is Format.EMAIL:
        if not is_email(entry):
            raise RequestError(7, "invalid e-mail address")
        local, _, domain = entry.rpartition("@")
        return f"{local}@{domain.lower()}"
    if entry.startswith("#"):
        if not bot or _TELEGRAM_RE.fullmatch(entry) is None:
            raise RequestError(7, "invalid Telegram recipient")
        return entry
    return normalize_number(entry, region=region)
