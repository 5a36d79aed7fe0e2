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

Delivery status (:meth:`SmscProvider.query_status`): SMSC's HTTP API has a
status query (``seeds/smsc-api-overview.txt``, "Checking the status";
``status.php`` beside ``send.php``): ``POST <status url>`` form ``login psw
phone id fmt=3`` answers ``{"status": N, "last_timestamp": T, "err": E}`` or
``{"error": …, "error_code": N}``. The status codes, as SMSC's API names
them, become receipts (:data:`STATUS_CODES`): 1 delivered, 2 read and 4 link
opened are ``delivered``; 3 is ``expired``; 20 undeliverable, 22 invalid
number, 23 prohibited, 24 no funds, 25 unavailable number are ``failed``;
-1 waiting and 0 handed to the operator are interim; -3 (not found) gives no
receipt. ``E``, when not 0, is the receipt's error code; ``T`` its time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

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
    classify_code,
    json_document,
    send_each,
    unreadable_answer,
)
from mailbridge.providers.events import Receipt, ReceiptState, SentSms
from mailbridge.settings import ProviderSettings

__all__ = [
    "FORMAT_PARAMS",
    "SMSC_FORMATS",
    "STATUS_CODES",
    "SmscProvider",
    "classify_smsc_code",
    "parse_status",
    "status_url",
]

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

#: SMSC's status codes (``status.php``) → (the word kept with the receipt, its state).
STATUS_CODES: MappingProxyType[int, tuple[str, ReceiptState]] = MappingProxyType(
    {
        -1: ("WAITING", ReceiptState.PENDING),
        0: ("TRANSFERRED", ReceiptState.PENDING),
        1: ("DELIVERED", ReceiptState.DELIVERED),
        2: ("READ", ReceiptState.DELIVERED),
        3: ("EXPIRED", ReceiptState.EXPIRED),
        4: ("CLICKED", ReceiptState.DELIVERED),
        20: ("UNDELIVERABLE", ReceiptState.FAILED),
        22: ("INVALID_NUMBER", ReceiptState.FAILED),
        23: ("PROHIBITED", ReceiptState.FAILED),
        24: ("NO_FUNDS", ReceiptState.FAILED),
        25: ("UNAVAILABLE", ReceiptState.FAILED),
    }
)

_ITEM_CODES = frozenset({1, 5, 6, 7, 8})
_SLOW_DOWN_CODES = frozenset({4, 9})
_CODES = (("account", frozenset({2, 3})), ("item", _ITEM_CODES), ("slow_down", _SLOW_DOWN_CODES))


def classify_smsc_code(code: int) -> str:
    """``"account"``, ``"item"``, ``"slow_down"`` or ``"temporary"`` for an SMSC error code."""
    return classify_code(code, _CODES)


def status_url(send_url: str) -> str:
    """The status query's URL: ``status.php`` in the folder of ``send.php`` (query dropped)."""
    parts = urlsplit(send_url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))
    return urljoin(base, "status.php")


def parse_status(
    document: object, *, provider: str, message_id: str, now: datetime
) -> Receipt | None:
    """The receipt one ``status.php`` answer gives; None when it gives none (unknown id,
    unknown code, unreadable)."""
    if not isinstance(document, dict):
        return None
    code = _as_int(document.get("status"))
    if code is None or code not in STATUS_CODES:
        return None
    word, state = STATUS_CODES[code]
    err = _as_int(document.get("err"))
    at = now
    stamp = document.get("last_timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp > 0:
        try:
            at = datetime.fromtimestamp(float(stamp), UTC)
        except (OverflowError, OSError, ValueError):
            at = now
    return Receipt(
        provider=provider,
        message_id=message_id,
        state=state,
        status=word,
        error_code=str(err) if err else None,
        at=at,
    )


class SmscProvider(HttpProvider):
    """SMSC's ``send.php`` over HTTP POST, one recipient per request; ``status.php`` to ask."""

    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client, carried=SMSC_FORMATS)
        self.status_poll_s = settings.status_poll_s
        self._status_url = status_url(settings.url)

    async def query_status(self, sent: Sequence[SentSms], *, now: datetime) -> list[Receipt]:
        """Ask SMSC the status of each SMS; the receipts it gives (see the module docstring).

        Credentials refused raise :class:`PermanentProviderError`; a transient
        failure raises :class:`TemporaryProviderError`, ending the round.
        """
        receipts: list[Receipt] = []
        for item in sent:
            data = {
                "login": self._username,
                "psw": self._password,
                "phone": item.recipient,
                "id": item.message_id,
                "fmt": "3",
            }
            response, answer = await self._exchange("POST", data=data, url=self._status_url)
            document: Any = json_document(response)
            if isinstance(document, dict) and "error_code" in document:
                code = _as_int(document["error_code"])
                if code is not None and abs(code) == 2:
                    raise PermanentProviderError(
                        f"{self.name}: credentials refused (error 2)", provider_answer=answer
                    )
                if code is not None and abs(code) in _SLOW_DOWN_CODES:
                    raise TemporaryProviderError(
                        f"{self.name}: status query refused (error {abs(code)})",
                        provider_answer=answer,
                        retry_after_s=60.0,
                    )
                continue  # this SMS cannot be asked about (bad id or number): no receipt
            receipt = parse_status(
                document, provider=self.name, message_id=item.message_id, now=now
            )
            if receipt is not None:
                receipts.append(receipt)
        return receipts

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        return await send_each(self, batch, self._send_one)

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
        response, answer = await self._exchange("POST", data=self.form(item))
        status = response.status_code
        document: Any = json_document(response)
        if isinstance(document, dict) and "error_code" in document:
            return self._failure(document["error_code"], answer)
        self._check_credentials(status, answer)
        if isinstance(document, dict) and document.get("id") is not None and 200 <= status < 300:
            count = document.get("cnt")
            parts = _as_int(count)
            return Sent(
                provider_id=str(document["id"]),
                answer=answer,
                parts=parts if parts is not None and parts > 0 else None,
            )
        raise unreadable_answer(self.name, status, answer)

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
