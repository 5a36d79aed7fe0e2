"""The Miatel SMS hub (``seeds/miatel-send-sms.txt``): one GET per SMS.

Request: ``GET <url>?username=&password=&from=&to=&text=&comment=``; ``to`` is
the number's digits without ``+`` (as the seed's example), ``comment`` the
request ID, ``from`` left out when the sender is empty.

Answers (the body may be wrapped in ``<html><body>…</body></html>``):

* HTTP 202 ``0: Accepted for delivery. id:<uuid>. count:<n>. code:0`` →
  :class:`Sent` (``provider_id`` the uuid, ``parts`` = n);
* HTTP 404 ``4: Failed to send sms. status:<s>. code:-<c>`` → by the code
  (Miatel's table of response codes):

  ============================================  ==========================
  code                                          outcome
  ============================================  ==========================
  5003, 5048 (account disabled); HTTP 401/403   raised provider fault (credentials)
  10 (wrong source number), 5010 (direction     this SMS fails: permanent
  blocked), 5011/5060/5061/5063 (country
  blocked), 5036 (text blocked), 5037
  (destination blocked), 5038 (source blocked)
  88, 1009 (per-second limit)                   raised temporary, retry after 1 s
  1019 (per-day limit)                          raised temporary
  5050 (balance too low)                        raised provider fault (account)
  any other code                                raised temporary
  ============================================  ==========================

A 2xx body that is neither form is ambiguous (the SMS may have been taken):
raised temporary. Miatel takes no client id, so a retry after such an answer
may send a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format
from mailbridge.providers.base import (
    HttpProvider,
    Outbound,
    SendResult,
    Sent,
    classify_code,
    send_each,
    unreadable_answer,
)
from mailbridge.settings import ProviderSettings

__all__ = [
    "MIATEL_FORMATS",
    "MiatelAnswer",
    "MiatelProvider",
    "classify_miatel_code",
    "parse_miatel_answer",
]

MIATEL_FORMATS: frozenset[Format] = frozenset({Format.SMS})

_TAGS = re.compile(r"<[^>]*>")
_ACCEPTED = re.compile(
    r"^\s*0\s*:[^\n]*?\bid\s*:\s*(?P<id>[^\s.]+)\s*\.\s*count\s*:\s*(?P<count>\d+)", re.I
)
_FAILED = re.compile(
    r"^\s*(?P<rc>\d+)\s*:[^\n]*?\bstatus\s*:\s*(?P<status>\d+)\s*\.\s*code\s*:\s*(?P<code>-?\d+)",
    re.I,
)

_ACCOUNT_CODES = frozenset({5003, 5048})
_ITEM_CODES = frozenset({10, 5010, 5011, 5036, 5037, 5038, 5060, 5061, 5063})
_RATE_CODES = frozenset({88, 1009})
_FUNDS_CODES = frozenset({5050})
_CODES = (
    ("account", _ACCOUNT_CODES | _FUNDS_CODES),
    ("item", _ITEM_CODES),
    ("rate", _RATE_CODES),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MiatelAnswer:
    """A readable Miatel answer: accepted with ``id``/``count``, or failed with ``code``."""

    accepted: bool
    id: str = ""
    count: int = 0
    code: int = 0


def parse_miatel_answer(body: str) -> MiatelAnswer | None:
    """The answer in ``body`` (HTML wrapper allowed), ``None`` when it is neither form.

    ``code`` is the absolute value of a failure's ``code:-<c>``.
    """
    text = _TAGS.sub(" ", body).strip()
    accepted = _ACCEPTED.match(text)
    if accepted:
        return MiatelAnswer(accepted=True, id=accepted["id"], count=int(accepted["count"]))
    failed = _FAILED.match(text)
    if failed and failed["rc"] != "0":
        return MiatelAnswer(accepted=False, code=abs(int(failed["code"])))
    return None


def classify_miatel_code(code: int) -> str:
    """``"account"``, ``"item"``, ``"rate"`` or ``"temporary"`` for a Miatel error code."""
    return classify_code(code, _CODES)


class MiatelProvider(HttpProvider):
    """Miatel's ``sendsms`` over HTTP GET, one recipient per request."""

    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient) -> None:
        credentials = [("username", settings.username), ("password", settings.password)]
        super().__init__(settings, client, carried=MIATEL_FORMATS, fixed=credentials)

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        return await send_each(self, batch, self._send_one)

    async def _send_one(self, item: Outbound) -> SendResult:
        params = [
            ("to", item.recipient.removeprefix("+")),
            ("text", item.text),
            ("comment", item.request_id),
        ]
        if item.sender:
            params.insert(0, ("from", item.sender))
        response, answer = await self._exchange("GET", params=params)
        status = response.status_code
        self._check_credentials(status, answer)
        parsed = parse_miatel_answer(response.text)
        if parsed is not None and parsed.accepted and 200 <= status < 300:
            return Sent(provider_id=parsed.id, answer=answer, parts=parsed.count)
        if parsed is not None and not parsed.accepted:
            return self._failure(parsed.code, answer)
        raise unreadable_answer(self.name, status, answer)

    def _failure(self, code: int, answer: str) -> SendResult:
        kind = classify_miatel_code(code)
        if kind == "item":
            return PermanentProviderError(
                f"{self.name}: rejected (code {code})", provider_answer=answer
            )
        if kind == "account":
            raise ProviderUnavailableError(
                f"{self.name}: account refused (code {code}): check username/password"
                + (" and the balance" if code in _FUNDS_CODES else ""),
                provider_answer=answer,
            )
        raise TemporaryProviderError(
            f"{self.name}: failed (code {code})",
            provider_answer=answer,
            retry_after_s=1.0 if kind == "rate" else None,
        )
