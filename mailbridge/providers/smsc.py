"""SMSC's HTTP API (``send.php``; ``seeds/smsc-api-overview.txt``): one POST per SMS.

Request: ``POST <url>`` form ``login psw phones mes id sender fmt=3
charset=utf-8``. ``phones`` is the recipient as stored (E.164 with ``+``, which
tells SMSC not to "correct" it; an e-mail address for format 8; ``#id`` for
Telegram); ``id`` is the SMS's
:attr:`~mailbridge.providers.base.Outbound.client_ref`; ``sender`` is left out
when empty; the text is already transliterated and the gateway holds the
schedule, so neither ``translit`` nor ``time`` is sent. The format adds one
parameter, as SMSC's API names them (:data:`FORMAT_PARAMS`); WhatsApp (11) is
SMSC's ``bot=wa:<bot number>``, the bot number taken from the sender. Format 8
adds ``subj``, format 9 ``voice`` and ``param``.

Answers (``fmt=3``, JSON):

* ``{"id": …, "cnt": …}`` → :class:`Sent` (``cnt`` is the parts or, for a
  call, seconds);
* ``{"error": …, "error_code": N}`` → by ``N`` (SMSC's HTTP error codes):

  ===  ===========================  =====================================
  N    meaning                      outcome
  ===  ===========================  =====================================
  1    error in parameters          this SMS fails (permanent)
  2    bad login or password        raised provider fault (credentials)
  3    insufficient funds           raised provider fault (top-up cures it)
  4    IP address blocked           raised temporary, retry after 60 s
  5    bad date format              this SMS fails (permanent)
  6    message denied               this SMS fails (permanent)
  7    bad phone number format      this SMS fails (permanent)
  8    cannot deliver to the number this SMS fails (permanent)
  9    too many requests            raised temporary, retry after 60 s
  —    any other code               raised temporary
  ===  ===========================  =====================================

* HTTP 429/5xx, or a body that is neither → raised temporary (a 2xx with an
  unreadable body may have been taken: SMSC sees the same ``id`` again).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import httpx

from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format
from mailbridge.providers.base import (
    ALL_FORMATS,
    HttpProvider,
    Outbound,
    SendResult,
    Sent,
    check_batch,
)
from mailbridge.settings import ProviderSettings

__all__ = ["FORMAT_PARAMS", "SMSC_FORMATS", "SmscProvider", "classify_smsc_code"]

SMSC_FORMATS: frozenset[Format] = ALL_FORMATS

#: The form parameter each format adds (format 0 none; 11 is built from the sender).
FORMAT_PARAMS: MappingProxyType[Format, tuple[str, str]] = MappingProxyType(
    {
        Format.FLASH: ("flash", "1"),
        Format.WAP_PUSH: ("push", "1"),
        Format.HLR: ("hlr", "1"),
        Format.BINARY: ("bin", "1"),
        Format.BINARY_HEX: ("bin", "2"),
        Format.PING: ("ping", "1"),
        Format.MMS: ("mms", "1"),
        Format.EMAIL: ("mail", "1"),
        Format.VOICE: ("call", "1"),
        Format.VIBER: ("viber", "1"),
        Format.SOCIAL: ("soc", "1"),
    }
)

_ITEM_CODES = frozenset({1, 5, 6, 7, 8})
_SLOW_DOWN_CODES = frozenset({4, 9})


def classify_smsc_code(code: int) -> str:
    """``"account"``, ``"item"``, ``"slow_down"`` or ``"temporary"`` for an SMSC error code."""
    if code in (2, 3):
        return "account"
    if code in _ITEM_CODES:
        return "item"
    if code in _SLOW_DOWN_CODES:
        return "slow_down"
    return "temporary"


class SmscProvider(HttpProvider):
    """SMSC's ``send.php`` over HTTP POST, one recipient per request."""

    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client, carried=SMSC_FORMATS)

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        check_batch(self.name, batch, self.max_batch)
        return [await self._send_one(item) for item in batch]

    def form(self, item: Outbound) -> dict[str, str]:
        """The form fields for one SMS (the password included: never log this)."""
        data = {
            "login": self._username,
            "psw": self._password,
            "phones": item.recipient,
            "mes": item.text,
            "id": item.client_ref,
            "fmt": "3",
            "charset": "utf-8",
        }
        if item.sender:
            data["sender"] = item.sender
        extra = FORMAT_PARAMS.get(item.format)
        if extra is not None:
            data[extra[0]] = extra[1]
        elif item.format == Format.WHATSAPP:
            data["bot"] = f"wa:{item.sender.removeprefix('+')}"
        if item.format == Format.EMAIL and item.subject:
            data["subj"] = item.subject
        if item.format == Format.VOICE:
            if item.voice:
                data["voice"] = item.voice
            if item.param:
                data["param"] = item.param
        return data

    async def _send_one(self, item: Outbound) -> SendResult:
        if item.format not in self.formats:
            return PermanentProviderError(f"{self.name}: format {int(item.format)} not carried")
        response, answer = await self._exchange("POST", data=self.form(item))
        status = response.status_code
        try:
            document: Any = json.loads(response.content)
        except ValueError:
            document = None
        if isinstance(document, dict) and "error_code" in document:
            return self._failure(document["error_code"], answer)
        if status in (401, 403):
            raise ProviderUnavailableError(
                f"{self.name}: credentials refused (HTTP {status})", provider_answer=answer
            )
        if isinstance(document, dict) and document.get("id") is not None and 200 <= status < 300:
            count = document.get("cnt")
            parts = _as_int(count)
            return Sent(
                provider_id=str(document["id"]),
                answer=answer,
                parts=parts if parts is not None and parts > 0 else None,
            )
        raise TemporaryProviderError(
            f"{self.name}: unreadable answer (HTTP {status})", provider_answer=answer
        )

    def _failure(self, raw_code: object, answer: str) -> SendResult:
        code = _as_int(raw_code)
        if code is None:
            raise TemporaryProviderError(
                f"{self.name}: unreadable error code", provider_answer=answer
            )
        code = abs(code)
        kind = classify_smsc_code(code)
        if kind == "item":
            return PermanentProviderError(
                f"{self.name}: rejected (error {code})", provider_answer=answer
            )
        if kind == "account":
            what = "credentials refused" if code == 2 else "insufficient funds"
            raise ProviderUnavailableError(
                f"{self.name}: {what} (error {code})", provider_answer=answer
            )
        raise TemporaryProviderError(
            f"{self.name}: failed (error {code})",
            provider_answer=answer,
            retry_after_s=60.0 if kind == "slow_down" else None,
        )


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
