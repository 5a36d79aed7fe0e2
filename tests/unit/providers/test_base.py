"""Unit tests for mailbridge.providers.base: values, Retry-After, redaction, error translation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import quote, quote_plus

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format
from mailbridge.providers.base import (
    ANSWER_LIMIT,
    Outbound,
    SendResult,
    Sent,
    check_batch,
    classify_code,
    format_refused,
    http_request,
    parse_retry_after,
    redact,
    send_each,
    shorten,
    transient_status,
)
from tests.unit.providers.conftest import PASSWORD, outbound

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
URL = "https://provider.test/send"


class TestOutbound:
    def test_client_ref_is_stable_and_per_row(self) -> None:
        """The client ref depends on the SMS row id only."""
        assert outbound(sms_id=5).client_ref == outbound(sms_id=5, text="other").client_ref
        assert outbound(sms_id=5).client_ref != outbound(sms_id=6).client_ref
        assert outbound(sms_id=5).client_ref == "mb-5"


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            ("", None),
            ("   ", None),
            ("5", 5.0),
            (" 7 ", 7.0),
            ("1.5", 1.5),
            ("0", 0.0),
            ("-1", None),
            ("nan", None),
            ("inf", None),
            ("soon", None),
            (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
            (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
            ("Sat, 01 Mar 2025 12:01:00 GMT", 60.0),
            ("Saturday, 01-Mar-25 12:00:10 GMT", 10.0),
        ],
    )
    def test_forms(self, value: str | None, expected: float | None) -> None:
        """Delay-seconds and HTTP-dates give seconds; junk gives None."""
        assert parse_retry_after(value, now=NOW) == expected

    @given(st.integers(min_value=0, max_value=10**9))
    def test_any_delay_seconds(self, seconds: int) -> None:
        """Every non-negative integer reads back as itself."""
        assert parse_retry_after(str(seconds)) == float(seconds)

    @given(st.text(max_size=40))
    def test_never_raises(self, value: str) -> None:
        """Any header value gives a non-negative number or None."""
        result = parse_retry_after(value, now=NOW)
        assert result is None or result >= 0


class TestRedact:
    @pytest.mark.parametrize(
        "form", [PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), quote(PASSWORD)]
    )
    def test_every_form_is_hidden(self, form: str) -> None:
        """The password goes, raw or URL-encoded."""
        text = f"GET /send?password={form}&to=1"
        assert PASSWORD not in redact(text, PASSWORD)
        assert form not in redact(text, PASSWORD)

    def test_empty_secret_changes_nothing(self) -> None:
        """Without a password there is nothing to hide."""
        assert redact("a b c", "") == "a b c"


class TestShorten:
    def test_collapses_whitespace(self) -> None:
        """Runs of whitespace become one space."""
        assert shorten("  a\n\n b\t c  ") == "a b c"

    @given(st.text(max_size=1000))
    def test_fits_the_limit(self, text: str) -> None:
        """The result never exceeds the limit."""
        assert len(shorten(text)) <= ANSWER_LIMIT


class TestCheckBatch:
    def test_too_large_is_a_bug(self) -> None:
        """More than max_batch items is the caller's error."""
        with pytest.raises(ValueError, match="exceeds max_batch 1"):
            check_batch("p", [outbound(), outbound()], 1)


class TestTransientStatus:
    @pytest.mark.parametrize("status", [200, 202, 400, 401, 404])
    def test_not_transient(self, status: int) -> None:
        """Success and ordinary client errors are left to the adapter."""
        assert transient_status("p", httpx.Response(status), PASSWORD) is None

    @pytest.mark.parametrize(
        ("status", "header", "retry_after"),
        [
            (429, "3", 3.0),
            (429, "Sat, 01 Mar 2025 12:00:20 GMT", 20.0),
            (429, None, None),
            (503, "10", 10.0),
            (500, None, None),
            (502, None, None),
            (408, None, None),
        ],
    )
    def test_transient(self, status: int, header: str | None, retry_after: float | None) -> None:
        """408, 429 and 5xx are temporary, with the Retry-After hint when given."""
        headers = {"Retry-After": header} if header else {}
        response = httpx.Response(status, headers=headers, text=f"busy {PASSWORD}")
        error = transient_status("p", response, PASSWORD, now=NOW)
        assert isinstance(error, TemporaryProviderError)
        assert error.retry_after_s == retry_after
        assert PASSWORD not in str(error)
        assert PASSWORD not in error.provider_answer


class TestHttpRequest:
    @pytest.mark.parametrize(
        "exc",
        [
            httpx.ConnectError("refused"),
            httpx.ConnectTimeout("slow"),
            httpx.ReadTimeout("slow"),
            httpx.ReadError("reset"),
            httpx.RemoteProtocolError("closed"),
            httpx.PoolTimeout("busy"),
        ],
    )
    async def test_transport_errors_are_temporary(
        self, router: respx.Router, client: httpx.AsyncClient, exc: Exception
    ) -> None:
        """Every transport failure becomes a temporary error chained to the cause."""
        router.get(URL).mock(side_effect=exc)
        with pytest.raises(TemporaryProviderError) as info:
            await http_request(
                client, "GET", URL, name="p", deadline_s=5, params=[("password", PASSWORD)]
            )
        assert info.value.__cause__ is exc
        assert str(info.value).startswith("p: ")

    async def test_error_text_does_not_quote_the_url(
        self, router: respx.Router, client: httpx.AsyncClient
    ) -> None:
        """An httpx message quoting the URL (and its password) is not repeated."""
        router.get(URL).mock(side_effect=httpx.ConnectError(f"failed {URL}?password={PASSWORD}"))
        with pytest.raises(TemporaryProviderError) as info:
            await http_request(client, "GET", URL, name="p", deadline_s=5)
        assert PASSWORD not in str(info.value)
        assert "password" not in str(info.value)

    async def test_deadline(self, router: respx.Router, client: httpx.AsyncClient) -> None:
        """A request that outlives the overall deadline is temporary."""
        never = asyncio.Event()

        async def stall(request: httpx.Request) -> httpx.Response:
            await never.wait()
            return httpx.Response(200)

        router.get(URL).mock(side_effect=stall)
        with pytest.raises(TemporaryProviderError, match="no answer within"):
            await http_request(client, "GET", URL, name="p", deadline_s=0.01)

    async def test_invalid_url_is_permanent(self, client: httpx.AsyncClient) -> None:
        """A URL httpx cannot parse will not get better."""
        with pytest.raises(ProviderUnavailableError, match="invalid provider URL"):
            await http_request(client, "GET", "http://\x00bad/", name="p", deadline_s=5)

    async def test_repeated_params_keep_order(
        self, router: respx.Router, client: httpx.AsyncClient
    ) -> None:
        """Query parameters go out repeated and in order."""
        route = router.post(URL).mock(return_value=httpx.Response(200))
        await http_request(
            client, "POST", URL, name="p", deadline_s=5, params=[("a", "1"), ("b", "2"), ("a", "3")]
        )
        assert route.calls.last.request.url.query == b"a=1&b=2&a=3"


def test_format_refused() -> None:
    """An item in a carried format passes; another fails alone, naming provider and format."""
    carried = frozenset({Format.SMS, Format.FLASH})
    assert format_refused("p", carried, outbound(format=Format.FLASH)) is None
    refused = format_refused("p", carried, outbound(format=Format.VOICE))
    assert isinstance(refused, PermanentProviderError)
    assert str(refused) == "p: format 9 not carried"


class _OneAtATime:
    """A stand-in provider for :func:`send_each`: it records what it is asked to send."""

    name = "p"
    formats = frozenset({Format.SMS})
    max_batch = 3

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        return await send_each(self, batch, self.send_one)

    async def send_one(self, item: Outbound) -> SendResult:
        self.sent.append(item.recipient)
        return Sent(provider_id=item.recipient, answer="ok")

    async def aclose(self) -> None:
        return None


class TestSendEach:
    async def test_in_order_one_each_an_uncarried_format_fails_alone(self) -> None:
        """Items go one by one in order; an item in a format not carried fails, unsent."""
        provider = _OneAtATime()
        batch = [
            outbound(recipient="+79990000001"),
            outbound(recipient="+79990000002", format=Format.VOICE),
            outbound(recipient="+79990000003"),
        ]
        results = await provider.send(batch)
        assert provider.sent == ["+79990000001", "+79990000003"]
        assert [type(r) for r in results] == [Sent, PermanentProviderError, Sent]
        assert str(results[1]) == "p: format 9 not carried"

    async def test_a_batch_too_large_sends_nothing(self) -> None:
        """More than max_batch items raises before any request."""
        provider = _OneAtATime()
        with pytest.raises(ValueError, match="exceeds max_batch 3"):
            await provider.send([outbound()] * 4)
        assert provider.sent == []


def test_classify_code_first_row_wins_else_temporary() -> None:
    """The first row holding the code names its kind; a code in no row is temporary."""
    table = (("account", frozenset({2, 3})), ("item", frozenset({3, 5})))
    assert classify_code(3, table) == "account"
    assert classify_code(5, table) == "item"
    assert classify_code(7, table) == "temporary"
    assert classify_code(7, ()) == "temporary"
