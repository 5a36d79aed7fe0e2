"""The JSON-API HTTP message endpoint (``seeds/jsonapi-http-message.txt``).

Request: ``POST <url>?_login=&_password=`` then, repeated per recipient in
batch order, ``destination_number=&body=&source_name=&require_dlr=1&request_id=``
(``destination_number`` as digits without ``+``, ``request_id`` the SMS's
:attr:`~mailbridge.providers.base.Outbound.client_ref`). ``source_name`` is
repeated for every recipient when any has a sender, and ``stealth_ping`` (1 for
format 6, else 0) when any is a ping, so the repeated groups stay aligned.
Up to ``max_recipients`` recipients go in one request.

Answers:

* ``{"data": {...}}`` (one recipient) or ``{"data": [...]}``; each result is
  matched back to its SMS by ``meta.request_id`` (or ``attributes.request_id``),
  else by ``destination_number``, else by position; ``attributes.status``
  ``ok`` (the seed also spells it in Cyrillic, ``ок``) → :class:`Sent` with
  ``segments`` as parts; ``error`` → that SMS fails (permanent: the provider
  refused it and charged nothing); an SMS with no matching result → temporary.
* ``{"errors": [{"code", "title", "detail"}]}`` → the whole request fails:
  ``authentication`` (the codes in :data:`ACCOUNT_CODES`, and HTTP 401/403)
  raised as a provider fault (:class:`ProviderUnavailableError`), the codes in
  :data:`PERMANENT_CODES` raised permanent, naming the code; any other code
  raised temporary.
* HTTP 429/5xx, a body that is not such JSON → raised temporary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from mailbridge.errors import (
    PermanentProviderError,
    ProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format
from mailbridge.providers.base import (
    HttpProvider,
    Outbound,
    SendResult,
    Sent,
    check_batch,
    format_refused,
    json_document,
    redact,
    shorten,
)
from mailbridge.settings import ProviderSettings

__all__ = ["ACCOUNT_CODES", "JSONAPI_FORMATS", "PERMANENT_CODES", "JsonApiProvider"]

JSONAPI_FORMATS: frozenset[Format] = frozenset({Format.SMS, Format.PING})

#: Error codes that refuse the gateway itself (SPEC §4: a provider fault, not the SMS's).
ACCOUNT_CODES: frozenset[str] = frozenset(
    {"authentication", "authorization", "forbidden", "access_denied"}
)

#: Error codes that retrying cannot cure; any other code is temporary.
PERMANENT_CODES: frozenset[str] = frozenset(
    {
        "validation",
        "invalid_parameter",
        "invalid_parameters",
        "invalid_destination_number",
        "destination_number",
        "blacklisted",
        "blocked",
    }
)

_OK = frozenset({"ok", "ок"})


def _digits(number: str) -> str:
    return number.removeprefix("+")


class JsonApiProvider(HttpProvider):
    """The JSON-API ``message`` endpoint, several recipients per request."""

    def __init__(self, settings: ProviderSettings, client: httpx.AsyncClient) -> None:
        credentials = [("_login", settings.username), ("_password", settings.password)]
        super().__init__(settings, client, carried=JSONAPI_FORMATS, fixed=credentials)
        self.max_batch = max(1, settings.max_recipients)

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        check_batch(self.name, batch, self.max_batch)
        results: list[SendResult | None] = [
            format_refused(self.name, self.formats, item) for item in batch
        ]
        todo = [item for item, result in zip(batch, results, strict=True) if result is None]
        if todo:
            answers = iter(await self._send_many(todo))
            results = [next(answers) if result is None else result for result in results]
        return [result for result in results if result is not None]

    async def _send_many(self, batch: Sequence[Outbound]) -> list[SendResult]:
        response, answer = await self._exchange("POST", params=self._params(batch))
        status = response.status_code
        document: Any = json_document(response)
        if isinstance(document, dict) and isinstance(document.get("errors"), list):
            raise self._request_error(document["errors"], status, answer)
        self._check_credentials(status, answer)
        data = document.get("data") if isinstance(document, dict) else None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list) or not 200 <= status < 300:
            raise TemporaryProviderError(
                f"{self.name}: unreadable answer (HTTP {status})", provider_answer=answer
            )
        return self._match(batch, [entry for entry in data if isinstance(entry, dict)])

    def _params(self, batch: Sequence[Outbound]) -> list[tuple[str, str]]:
        with_sender = any(item.sender for item in batch)
        with_ping = any(item.format == Format.PING for item in batch)
        params: list[tuple[str, str]] = []  # after ``_login`` and ``_password`` (in ``_url``)
        for item in batch:
            params.append(("destination_number", _digits(item.recipient)))
            params.append(("body", item.text))
            if with_sender:
                params.append(("source_name", item.sender))
            params.append(("require_dlr", "1"))
            params.append(("request_id", item.client_ref))
            if with_ping:
                params.append(("stealth_ping", "1" if item.format == Format.PING else "0"))
        return params

    def _request_error(self, errors: list[Any], status: int, answer: str) -> ProviderError:
        first = next((e for e in errors if isinstance(e, dict)), {})
        code = str(first.get("code", "")).strip()
        said = ": ".join(
            redact(str(first[key]), self._password) for key in ("title", "detail") if first.get(key)
        )
        what = f"{code or 'error'}" + (f": {shorten(said, 120)}" if said else "")
        if code.lower() in ACCOUNT_CODES or status in (401, 403):
            return ProviderUnavailableError(
                f"{self.name}: credentials refused ({what})", provider_answer=answer
            )
        if code.lower() in PERMANENT_CODES:
            return PermanentProviderError(
                f"{self.name}: request refused ({what})", provider_answer=answer
            )
        return TemporaryProviderError(
            f"{self.name}: request failed ({what})", provider_answer=answer
        )

    def _match(self, batch: Sequence[Outbound], entries: list[dict[str, Any]]) -> list[SendResult]:
        by_ref: dict[str, int] = {}
        by_number: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            ref = _request_id(entry)
            if ref:
                by_ref.setdefault(ref, index)
            number = _attributes(entry).get("destination_number")
            if number is not None:
                by_number.setdefault(_digits(str(number)), []).append(index)
        used: set[int] = set()
        results: list[SendResult] = []
        for position, item in enumerate(batch):
            found = by_ref.get(item.client_ref)
            if found is None or found in used:
                found = next(
                    (i for i in by_number.get(_digits(item.recipient), ()) if i not in used), None
                )
            if found is None and len(entries) == len(batch) and position not in used:
                found = position
            if found is None:
                results.append(TemporaryProviderError(f"{self.name}: no result for this recipient"))
                continue
            used.add(found)
            results.append(self._result(item, entries[found]))
        return results

    def _result(self, item: Outbound, entry: dict[str, Any]) -> SendResult:
        attributes = _attributes(entry)
        answer = shorten(redact(json.dumps(entry, ensure_ascii=False), self._password))
        status = str(attributes.get("status", "")).strip().lower()
        if status in _OK:
            segments = attributes.get("segments")
            return Sent(
                provider_id=str(entry.get("id") or item.client_ref),
                answer=answer,
                parts=segments if isinstance(segments, int) and segments > 0 else None,
            )
        if status == "error":
            return PermanentProviderError(f"{self.name}: rejected", provider_answer=answer)
        return TemporaryProviderError(
            f"{self.name}: unexpected status {status[:20]!r}", provider_answer=answer
        )


def _attributes(entry: dict[str, Any]) -> dict[str, Any]:
    attributes = entry.get("attributes")
    return attributes if isinstance(attributes, dict) else {}


def _request_id(entry: dict[str, Any]) -> str | None:
    meta = entry.get("meta")
    for source in (meta if isinstance(meta, dict) else {}, _attributes(entry)):
        value = source.get("request_id")
        if value is not None:
            return str(value)
    return None
