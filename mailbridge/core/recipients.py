"""Which mailbox a recipient names, and whether the transaction may add it (SPEC §1–3).

The RCPT rules of the SMTP handler as pure functions: the handler asks
:func:`classify_recipient` what an address is and :func:`admit_recipient`
whether this transaction takes it, and answers with the line it gets.

Decisions where the SPEC is silent:

* Any mix of the command address, forward aliases and number addresses in
  one transaction (SPEC §3), up to :data:`MAX_NUMBER_RCPTS` recipients; the
  next one gets ``452 4.5.3`` (the client sends it again in a new
  transaction, RFC 5321 §4.5.3.1.10). :func:`route_groups` splits them into
  the requests the mail makes: the command, each alias, the numbers.
* A number address whose number is not valid gets ``550 5.1.1 … invalid
  phone number`` (:func:`invalid_number_address`), not "no such mailbox".
* Forward and number addresses check the envelope sender against their
  ``allowed_senders`` (exact or ``*`` wildcards, case-insensitive; the null
  sender never matches).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mailbridge.core.patterns import wildcard_match
from mailbridge.errors import RequestError
from mailbridge.models import RouteKind
from mailbridge.settings import ForwardAlias, Settings

__all__ = [
    "INVALID_NUMBER",
    "MAX_NUMBER_RCPTS",
    "NO_SUCH_MAILBOX",
    "NumberNormalizer",
    "Route",
    "RouteKind",
    "admit_recipient",
    "classify_recipient",
    "invalid_number_address",
    "route_groups",
    "sender_allowed",
]

#: Most recipients in one mail (any mix of kinds).
MAX_NUMBER_RCPTS = 50

INVALID_NUMBER = "550 5.1.1 Recipient address rejected: invalid phone number"

NO_SUCH_MAILBOX = "550 5.1.1 Recipient address rejected: no such mailbox here"
_OK = "250 2.1.5 OK"
_TOO_MANY = "452 4.5.3 Too many recipients, send this one in another mail"
_FORWARD_SENDER = "550 5.7.1 Sender not allowed to write to this address"
_NUMBER_SENDER = "550 5.7.1 Sender not allowed to write to number addresses"


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """What a recipient address is: the command mailbox, a forward alias or a number."""

    kind: RouteKind
    address: str  # lower case
    alias: ForwardAlias | None = None
    number: str | None = None  # E.164, number addresses only


#: Local part of a number address -> E.164 (``phones.normalize_number`` bound to a region).
NumberNormalizer = Callable[[str], str]

_NUMBER_LOCAL_RE = re.compile(r"\+?[0-9][0-9().\-]{5,20}")


@functools.lru_cache(maxsize=32)
def _domain_set(domains: tuple[str, ...]) -> frozenset[str]:
    """``[smtp] domains`` as compared (lower case, no final dot); made once per setting."""
    return frozenset(d.lower().rstrip(".") for d in domains)


def classify_recipient(
    address: str, settings: Settings, *, normalize: NumberNormalizer | None = None
) -> Route | None:
    """The mailbox ``address`` names, or None when it is none of the gateway's.

    ``normalize`` turns the local part of a number address into E.164 (it
    raises ``RequestError`` for an invalid number); number addresses are
    recognised only when ``[number_addresses] enabled`` and it is given.
    """
    addr = address.strip().lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local:
        return None
    for alias in settings.forward:
        if alias.address.lower() == addr:
            return Route(kind=RouteKind.FORWARD, address=addr, alias=alias)
    if domain.rstrip(".") not in _domain_set(settings.smtp.domains):
        return None
    if local == settings.smtp.command_address.lower():
        return Route(kind=RouteKind.COMMAND, address=addr)
    if settings.number_addresses.enabled and normalize is not None:
        if not _NUMBER_LOCAL_RE.fullmatch(local):
            return None
        try:
            number = normalize(local)
        except RequestError:
            return None
        return Route(kind=RouteKind.NUMBER, address=addr, number=number)
    return None


def sender_allowed(mail_from: str, patterns: Iterable[str] | None) -> bool:
    """Whether the envelope sender matches one of ``patterns`` (exact or ``*`` wildcards).

    Case-insensitive. The null sender never matches a pattern. ``patterns`` None (no
    ``allowed_senders`` in the config): any sender, SPEC §3.
    """
    if patterns is None:
        return True
    sender = mail_from.strip().lower()
    if not sender:
        return False
    for pattern in patterns:
        pat = pattern.strip().lower()
        if not pat:
            continue
        if "*" not in pat:
            if pat == sender:
                return True
            continue
        if wildcard_match(pat, sender):
            return True
    return False


def admit_recipient(
    route: Route, routes: Sequence[Route], mail_from: str, settings: Settings
) -> tuple[str, bool]:
    """The RCPT answer for ``route`` given the transaction's ``routes`` so far.

    Returns (reply line, whether to add the route). ``mail_from`` is the
    envelope sender, ``""`` for the null sender.
    """
    if any(r.address == route.address for r in routes):
        return _OK, False
    if len(routes) >= MAX_NUMBER_RCPTS:
        return _TOO_MANY, False
    if route.kind == RouteKind.FORWARD:
        assert route.alias is not None
        if not sender_allowed(mail_from, route.alias.allowed_senders):
            return _FORWARD_SENDER, False
    elif route.kind == RouteKind.NUMBER and not sender_allowed(
        mail_from, settings.number_addresses.allowed_senders
    ):
        return _NUMBER_SENDER, False
    return _OK, True


_LOOKS_LIKE_NUMBER_RE = re.compile(r"\+?[0-9][0-9().\- ]*")


def invalid_number_address(address: str, settings: Settings) -> bool:
    """Whether ``address`` (which :func:`classify_recipient` did not take) is a number
    address of a served domain whose number is not valid, so the answer can say so."""
    if not settings.number_addresses.enabled:
        return False
    local, at, domain = address.strip().lower().rpartition("@")
    domains = {d.lower().rstrip(".") for d in settings.smtp.domains}
    return (
        bool(at) and domain.rstrip(".") in domains and bool(_LOOKS_LIKE_NUMBER_RE.fullmatch(local))
    )


def route_groups(routes: Sequence[Route]) -> list[list[Route]]:
    """The requests one mail to ``routes`` makes: the command (first, whatever the RCPT
    order), then each forward alias and the number addresses together, in RCPT order."""
    command = [r for r in routes if r.kind == RouteKind.COMMAND]
    groups: list[list[Route]] = [command[:1]] if command else []
    numbers: list[Route] = []
    for route in routes:
        if route.kind == RouteKind.FORWARD:
            groups.append([route])
        elif route.kind == RouteKind.NUMBER:
            if not numbers:
                groups.append(numbers)
            numbers.append(route)
    return groups
