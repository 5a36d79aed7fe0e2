"""The provider protocol, the values that cross it, and what every HTTP adapter shares.

A provider takes a batch of :class:`Outbound` SMS (at most ``max_batch``) and
answers with one result per item, in the same order: :class:`Sent`, or a
:class:`~mailbridge.errors.ProviderError` that concerns only that item (the
provider rejected this number or this text). A failure of the whole request
(timeout, connection error, HTTP 5xx or 429, a body that cannot be read) is
*raised* as :class:`~mailbridge.errors.TemporaryProviderError` or
:class:`~mailbridge.errors.PermanentProviderError` instead: it says something
about the provider, not about the SMS, so the dispatcher may fail over. A
provider that refuses the gateway itself (credentials, account, a bad URL, a
refused SMPP bind) raises :class:`~mailbridge.errors.ProviderUnavailableError`,
a temporary error: the SMS wait or fail over, they never fail for it.

Adapters translate library exceptions at this boundary (``raise … from exc``) so
callers see only mailbridge errors. The provider password never appears in an
error message, an answer string or a log line: every text taken from a response
goes through :func:`redact` and is shortened by :func:`shorten`.

A response body is read up to :data:`BODY_LIMIT` (64 KiB, after content
decoding, so a compressed bomb is stopped as early as a plain one); a longer
one is not read further: the request is a temporary error and one warning
line says so. Provider answers are a few hundred bytes; 30 MB of answer used
to cost ≈ 110 MB of memory each.

A 2xx answer whose body cannot be read is ambiguous (the provider may have
taken the SMS): it is a temporary error, and the duplicate that a retry may
cause is left to providers that drop repeats of the same client id
(:attr:`Outbound.client_ref`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import re
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, quote_plus, urlencode

import httpx

from mailbridge.errors import (
    PermanentProviderError,
    ProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.log import get_logger
from mailbridge.models import Format
from mailbridge.settings import ProviderSettings

__all__ = [
    "ALL_FORMATS",
    "ANSWER_LIMIT",
    "BODY_LIMIT",
    "HttpProvider",
    "Outbound",
    "Provider",
    "SendResult",
    "Sent",
    "check_batch",
    "classify_code",
    "format_refused",
    "http_request",
    "json_document",
    "parse_retry_after",
    "redact",
    "send_each",
    "shorten",
    "transient_status",
    "unreadable_answer",
    "with_query",
]

#: How much of a provider's answer is kept (in answers and error texts).
ANSWER_LIMIT = 200

#: The most of a response body that is read (bytes, after content decoding).
BODY_LIMIT = 64 * 1024

#: Every format of the SMSC grammar.
ALL_FORMATS: frozenset[Format] = frozenset(Format)

_SPACES = re.compile(r"\s+")
_log = get_logger("mailbridge.providers")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbound:
    """One SMS to one recipient, as the dispatcher hands it to a provider.

    ``recipient`` is E.164 (``+79991234567``), an e-mail address (format 8) or
    a ``#id`` Telegram recipient; ``text`` is already transliterated.
    """

    sms_id: int
    request_id: str
    recipient: str
    text: str
    sender: str
    format: Format
    subject: str | None = None
    voice: str | None = None
    param: str | None = None

    @property
    def client_ref(self) -> str:
        """A stable id unique per SMS row, passed upstream so a provider can drop repeats."""
        return f"mb-{self.sms_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A provider took the SMS: its id for it, its answer (shortened), and parts if told."""

    provider_id: str
    answer: str
    parts: int | None = None


SendResult = Sent | ProviderError


@runtime_checkable
class Provider(Protocol):
    """An upstream SMS provider.

    ``send`` returns one result per item of ``batch``, in order; it raises
    :class:`TemporaryProviderError` or :class:`PermanentProviderError` when the
    whole request failed. ``len(batch)`` must not exceed ``max_batch``.
    """

    name: str
    formats: frozenset[Format]
    max_batch: int

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]: ...

    async def aclose(self) -> None: ...


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` (raw or URL-encoded) replaced by ``***``."""
    if not secret:
        return text
    for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}:
        if form:
            text = text.replace(form, "***")
    return text


def shorten(text: str, limit: int = ANSWER_LIMIT) -> str:
    """Whitespace collapsed, cut to ``limit`` characters (``…`` marks a cut)."""
    text = _SPACES.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date.

    ``None`` when absent or unreadable; a date in the past gives ``0.0``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def format_refused(
    name: str, formats: frozenset[Format], item: Outbound
) -> PermanentProviderError | None:
    """The result of an item in a format the provider does not carry, else None.

    The request builder accepts only formats some provider carries and routing
    gives each provider only its own formats, so this is a guard against a
    caller's bug: the item fails alone, nothing is sent.
    """
    if item.format in formats:
        return None
    return PermanentProviderError(f"{name}: format {int(item.format)} not carried")


def unreadable_answer(
    name: str, status: int, answer: str, what: str = "answer"
) -> TemporaryProviderError:
    """The temporary error of an answer the adapter cannot read, and one warning line.

    ``answer`` is already shortened and redacted. Nothing of the provider's
    answer can raise past the adapter (a body nested past the JSON parser's
    depth included): an unexpected answer is this line, never a traceback.
    """
    _log.warning("unexpected provider answer", provider=name, status=status, answer=answer)
    return TemporaryProviderError(
        f"{name}: unreadable {what} (HTTP {status})", provider_answer=answer
    )


def json_document(response: httpx.Response) -> Any:
    """The parsed JSON body of a response, or ``None`` when it is not JSON."""
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None


def check_batch(name: str, batch: Sequence[Outbound], max_batch: int) -> None:
    """Refuse a batch larger than the provider carries (a caller's bug)."""
    if len(batch) > max_batch:
        raise ValueError(f"{name}: batch of {len(batch)} exceeds max_batch {max_batch}")


def classify_code(code: int, table: Sequence[tuple[str, Container[int]]]) -> str:
    """The kind of the first row of ``table`` whose codes hold ``code``, else ``"temporary"``.

    Each adapter keeps its provider's table of error codes as such rows, in order.
    """
    return next((kind for kind, codes in table if code in codes), "temporary")


async def send_each(
    provider: Provider,
    batch: Sequence[Outbound],
    send_one: Callable[[Outbound], Awaitable[SendResult]],
) -> list[SendResult]:
    """``send`` of a provider that takes one SMS per request: the batch checked
    (:func:`check_batch`), then each item in order, one request each through
    ``send_one``, except an item in a format the provider does not carry
    (:func:`format_refused`: it fails alone, nothing is sent)."""
    check_batch(provider.name, batch, provider.max_batch)
    results: list[SendResult] = []
    for item in batch:
        refused = format_refused(provider.name, provider.formats, item)
        results.append(refused if refused is not None else await send_one(item))
    return results


def transient_status(
    name: str, response: httpx.Response, secret: str, *, now: datetime | None = None
) -> TemporaryProviderError | None:
    """The temporary error an HTTP status means on its own (408, 425, 429, 5xx), else ``None``."""
    status = response.status_code
    if status not in (408, 425, 429) and status < 500:
        return None
    answer = shorten(redact(response.text, secret))
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
    hint = f", retry after {retry_after:g} s" if retry_after is not None else ""
    return TemporaryProviderError(
        f"{name}: HTTP {status}{hint}", provider_answer=answer, retry_after_s=retry_after
    )


def with_query(url: str, params: Sequence[tuple[str, str]] | None) -> str:
    """``url`` with ``params`` appended to its query string, in order.

    Appending in two steps gives the same text as in one:
    ``with_query(with_query(u, a), b) == with_query(u, [*a, *b])``, so an
    adapter encodes the parameters that never change (login, password) once.
    """
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(params)


class HttpProvider:
    """What the HTTP adapters share: their settings, client, concurrency gate and exchange.

    ``fixed`` are the leading query parameters of every request (credentials
    for the GET-style APIs), encoded into the URL once. ``carried`` is what the
    wire format can carry; a provider's ``formats`` may narrow it.
    """

    max_batch = 1

    def __init__(
        self,
        settings: ProviderSettings,
        client: httpx.AsyncClient,
        *,
        carried: frozenset[Format],
        fixed: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.name = settings.name
        self.formats = carried & (settings.formats or carried)
        self._username = settings.username
        self._password = settings.password
        self._url = with_query(settings.url, fixed) if fixed else settings.url
        self._deadline = settings.timeout_s
        self._client = client
        self._gate = asyncio.Semaphore(max(1, settings.concurrency))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _exchange(
        self,
        method: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        data: Mapping[str, str] | None = None,
        url: str | None = None,
    ) -> tuple[httpx.Response, str]:
        """One request (to ``url``, default the provider's); a transient status raises,
        else (response, redacted short answer)."""
        async with self._gate:  # queue here, not in the connection pool (cheaper)
            response = await http_request(
                self._client,
                method,
                url or self._url,
                name=self.name,
                deadline_s=self._deadline,
                params=params,
                data=data,
            )
        transient = transient_status(self.name, response, self._password)
        if transient is not None:
            raise transient
        return response, shorten(redact(response.text, self._password))

    def _check_credentials(self, status: int, answer: str) -> None:
        """HTTP 401 or 403: the provider refuses the gateway itself (SPEC §4)."""
        if status in (401, 403):
            raise ProviderUnavailableError(
                f"{self.name}: credentials refused (HTTP {status})", provider_answer=answer
            )


async def http_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    name: str,
    deadline_s: float,
    params: Sequence[tuple[str, str]] | None = None,
    data: Mapping[str, str] | None = None,
    limit: int = BODY_LIMIT,
) -> httpx.Response:
    """Send one request under an overall deadline; library errors become provider errors.

    ``params`` go into the query string in the order given, repeated keys
    included (httpx's own ``params`` would group repeated keys). The returned
    response has its body read, at most ``limit`` bytes of it: a longer body
    is a :class:`TemporaryProviderError` (and a warning line). No part of the
    request (its URL carries the password for some providers) goes into the
    error text.
    """
    try:
        async with asyncio.timeout(deadline_s):
            request = client.build_request(method, with_query(url, params), data=data)
            response = await client.send(request, stream=True)
            try:
                body = await _read_capped(response, limit)
            finally:
                await response.aclose()
    except TimeoutError as exc:
        raise TemporaryProviderError(f"{name}: no answer within {deadline_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise TemporaryProviderError(f"{name}: {_describe(exc)}") from exc
    except httpx.InvalidURL as exc:
        raise ProviderUnavailableError(f"{name}: invalid provider URL") from exc
    if body is None:
        _log.warning(
            "provider answer too large",
            provider=name,
            status=response.status_code,
            limit_bytes=limit,
            content_length=response.headers.get("content-length"),
        )
        raise TemporaryProviderError(
            f"{name}: answer larger than {limit} bytes, not read (HTTP {response.status_code})"
        )
    response._content = body  # what ``Response.aread`` would have set
    return response


async def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The decoded body, or ``None`` as soon as it exceeds ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_DESCRIPTIONS: tuple[tuple[type[Exception], str], ...] = (
    (httpx.ConnectTimeout, "connect timed out"),
    (httpx.ReadTimeout, "read timed out"),
    (httpx.WriteTimeout, "write timed out"),
    (httpx.PoolTimeout, "no free connection in the pool"),
    (httpx.TimeoutException, "timed out"),
    (httpx.ConnectError, "connection failed"),
    (httpx.ReadError, "connection broken while reading"),
    (httpx.WriteError, "connection broken while writing"),
    (httpx.RemoteProtocolError, "connection closed or bad HTTP from the provider"),
    (httpx.UnsupportedProtocol, "unsupported URL scheme"),
    (httpx.TransportError, "transport error"),
)


def _describe(exc: Exception) -> str:
    """A fixed description of an httpx error: its text may quote the URL, which is not shown."""
    for kind, text in _DESCRIPTIONS:
        if isinstance(exc, kind):
            return f"{text} ({type(exc).__name__})"
    return f"HTTP error ({type(exc).__name__})"
