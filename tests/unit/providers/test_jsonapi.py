"""Unit tests for the JSON-API adapter (mailbridge.providers.jsonapi) against respx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from mailbridge.errors import (
    PermanentProviderError,
    ProviderUnavailableError,
    TemporaryProviderError,
)
from mailbridge.models import Format
from mailbridge.providers.base import Sent
from mailbridge.providers.jsonapi import JsonApiProvider
from mailbridge.settings import ProviderSettings
from tests.unit.providers.conftest import PASSWORD, outbound

URL = "https://api.test/api/message"
SETTINGS = ProviderSettings(
    name="ja", type="jsonapi", url=URL, username="LOGIN", password=PASSWORD, max_recipients=3
)


def entry(
    number: str, *, status: str = "ok", ref: str | None = None, id: str = "1", segments: int = 1
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "attributes": {"destination_number": number, "segments": segments, "status": status},
        "id": id,
        "type": "message",
    }
    if ref is not None:
        item["meta"] = {"request_id": ref}
    return item


THREE = [outbound(sms_id=i, recipient=f"+7999000000{i}", text=f"t{i}") for i in (1, 2, 3)]


@pytest.fixture
def provider(client: httpx.AsyncClient) -> JsonApiProvider:
    return JsonApiProvider(SETTINGS, client)


class TestRequest:
    async def test_parameters_repeat_per_recipient(
        self, router: respx.Router, provider: JsonApiProvider
    ) -> None:
        """Credentials once, then one aligned group per recipient, in batch order."""
        route = router.post(URL).mock(
            return_value=httpx.Response(200, json={"data": [entry("1"), entry("2"), entry("3")]})
        )
        await provider.send(THREE)
        pairs = route.calls.last.request.url.params.multi_items()
        assert pairs[:2] == [("_login", "LOGIN"), ("_password", PASSWORD)]
        assert [v for k, v in pairs if k == "destination_number"] == [
            "79990000001",
            "79990000002",
            "79990000003",
        ]
        assert [v for k, v in pairs if k == "body"] == ["t1", "t2", "t3"]
        assert [v for k, v in pairs if k == "request_id"] == ["mb-1", "mb-2", "mb-3"]
        assert [v for k, v in pairs if k == "source_name"] == ["Alex"] * 3
        assert [v for k, v in pairs if k == "require_dlr"] == ["1"] * 3
        assert "stealth_ping" not in dict(pairs)
        query = route.calls.last.request.url.query.decode()
        assert query.index("destination_number=79990000002") > query.index("request_id=mb-1")

    async def test_ping_sets_stealth_ping(
        self, router: respx.Router, provider: JsonApiProvider
    ) -> None:
        """Format 6 sends stealth_ping=1, kept aligned with the other recipients."""
        route = router.post(URL).mock(
            return_value=httpx.Response(200, json={"data": [entry("1"), entry("2")]})
        )
        await provider.send([outbound(sms_id=1, format=Format.PING, text=""), outbound(sms_id=2)])
        pairs = route.calls.last.request.url.params.multi_items()
        assert [v for k, v in pairs if k == "stealth_ping"] == ["1", "0"]

    async def test_no_sender_no_source_name(
        self, router: respx.Router, provider: JsonApiProvider
    ) -> None:
        """Without any sender, source_name is left out."""
        route = router.post(URL).mock(return_value=httpx.Response(200, json={"data": entry("1")}))
        await provider.send([outbound(sender="")])
        assert "source_name" not in route.calls.last.request.url.params

    def test_batch_size_and_formats(self, provider: JsonApiProvider) -> None:
        """max_batch follows max_recipients; formats are 0 and 6."""
        assert provider.max_batch == 3
        assert provider.formats == frozenset({Format.SMS, Format.PING})


class TestAnswers:
    async def test_single_object(self, router: respx.Router, provider: JsonApiProvider) -> None:
        """A lone data object answers a one-recipient request."""
        router.post(URL).mock(
            return_value=httpx.Response(
                200, json={"data": entry("79991234567", ref="mb-7", id="1561370632513", segments=2)}
            )
        )
        [result] = await provider.send([outbound()])
        assert isinstance(result, Sent)
        assert (result.provider_id, result.parts) == ("1561370632513", 2)
        assert "1561370632513" in result.answer

    async def test_cyrillic_ok(self, router: respx.Router, provider: JsonApiProvider) -> None:
        """The seed spells ok in Cyrillic; both spellings are success."""
        router.post(URL).mock(
            return_value=httpx.Response(200, json={"data": entry("79991234567", status="ок")})
        )
        [result] = await provider.send([outbound()])
        assert isinstance(result, Sent)

    async def test_mixed_results_in_order(
        self, router: respx.Router, provider: JsonApiProvider
    ) -> None:
        """Per-recipient ok/error map to Sent / permanent, in batch order."""
        data = [
            entry("79990000001", ref="mb-1", id="a"),
            entry("79990000002", ref="mb-2", id="b", status="error", segments=0),
            entry("79990000003", ref="mb-3", id="c"),
        ]
        router.post(URL).mock(return_value=httpx.Response(200, json={"data": data}))
        results = await provider.send(THREE)
        assert isinstance(results[0], Sent)
        assert results[0].provider_id == "a"
        assert isinstance(results[1], PermanentProviderError)
        assert isinstance(results[2], Sent)
        assert results[2].provider_id == "c"

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(
                [
                    entry("x", ref="mb-3", id="c"),
                    entry("x", ref="mb-1", id="a"),
                    entry("x", ref="mb-2", id="b"),
                ],
                id="reordered-by-request-id",
            ),
            pytest.param(
                [
                    entry("79990000003", id="c"),
                    entry("+79990000001", id="a"),
                    entry("79990000002", id="b"),
                ],
                id="reordered-by-number",
            ),
            pytest.param(
                [{"id": i, "attributes": {"status": "ok"}} for i in "abc"],
                id="by-position",
            ),
        ],
    )
    async def test_matching(
        self, router: respx.Router, provider: JsonApiProvider, data: list[dict[str, Any]]
    ) -> None:
        """Results go back to their SMS by request_id, else number, else position."""
        router.post(URL).mock(return_value=httpx.Response(200, json={"data": data}))
        results = await provider.send(THREE)
        assert [r.provider_id for r in results if isinstance(r, Sent)] == ["a", "b", "c"]

    async def test_missing_result_is_temporary(
        self, router: respx.Router, provider: JsonApiProvider
    ) -> None:
        """An SMS the answer does not mention may or may not be sent: temporary."""
        data = [entry("79990000001", ref="mb-1", id="a"), entry("79990000003", ref="mb-3", id="c")]
        router.post(URL).mock(return_value=httpx.Response(200, json={"data": data}))
        results = await provider.send(THREE)
        assert isinstance(results[0], Sent)
        assert isinstance(results[1], TemporaryProviderError)
        assert isinstance(results[2], Sent)

    @pytest.mark.parametrize("status", [200, 401])
    async def test_authentication_is_loud_and_permanent(
        self, router: respx.Router, provider: JsonApiProvider, status: int
    ) -> None:
        """errors[].code authentication raises permanent, naming the code."""
        errors = {
            "errors": [
                {
                    "code": "authentication",
                    "detail": "Please check your login and password",
                    "title": "Authentication error",
                }
            ]
        }
        router.post(URL).mock(return_value=httpx.Response(status, json=errors))
        with pytest.raises(ProviderUnavailableError) as info:
            await provider.send(THREE)
        assert "credentials refused (authentication" in str(info.value)
        assert PASSWORD not in str(info.value)

    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            ("validation", PermanentProviderError),
            ("authorization", ProviderUnavailableError),
            ("access_denied", ProviderUnavailableError),
            ("blacklisted", PermanentProviderError),
            ("throttled", TemporaryProviderError),
            ("internal", TemporaryProviderError),
            ("", TemporaryProviderError),
        ],
    )
    async def test_other_error_codes(
        self, router: respx.Router, provider: JsonApiProvider, code: str, kind: type[Exception]
    ) -> None:
        """Known refusals are permanent; any other code is temporary."""
        body = {"errors": [{"code": code, "title": "t", "detail": "d"}]}
        router.post(URL).mock(return_value=httpx.Response(400, json=body))
        with pytest.raises(kind):
            await provider.send([outbound()])

    @pytest.mark.parametrize(
        ("status", "body"),
        [(200, '{"data": ['), (200, "OK"), (200, "{}"), (200, '{"data": 5}'), (404, "nope")],
    )
    async def test_unreadable_answer_is_temporary(
        self, router: respx.Router, provider: JsonApiProvider, status: int, body: str
    ) -> None:
        """A body without data or errors is temporary."""
        router.post(URL).mock(return_value=httpx.Response(status, text=body))
        with pytest.raises(TemporaryProviderError, match="unreadable answer"):
            await provider.send([outbound()])

    @pytest.mark.parametrize(("status", "retry_after"), [(429, 9.0), (503, 9.0)])
    async def test_transient_http(
        self, router: respx.Router, provider: JsonApiProvider, status: int, retry_after: float
    ) -> None:
        """429 and 5xx raise temporary with the Retry-After hint."""
        router.post(URL).mock(return_value=httpx.Response(status, headers={"Retry-After": "9"}))
        with pytest.raises(TemporaryProviderError) as info:
            await provider.send(THREE)
        assert info.value.retry_after_s == retry_after

    async def test_password_echo_redacted(
        self, router: respx.Router, provider: JsonApiProvider
    ) -> None:
        """A provider echoing the password never gets it into results."""
        data = [entry("79991234567", status="error")]
        data[0]["attributes"]["detail"] = f"bad password {PASSWORD}"
        router.post(URL).mock(return_value=httpx.Response(200, json={"data": data}))
        [result] = await provider.send([outbound()])
        assert isinstance(result, PermanentProviderError)
        assert PASSWORD not in result.provider_answer
        assert PASSWORD not in str(result)

    async def test_format_not_carried_skips_item(
        self, router: respx.Router, provider: JsonApiProvider
    ) -> None:
        """An item in a format not carried fails alone; the rest is sent."""
        route = router.post(URL).mock(
            return_value=httpx.Response(200, json={"data": entry("79990000001", ref="mb-1")})
        )
        results = await provider.send([outbound(sms_id=1), outbound(sms_id=2, format=Format.VOICE)])
        assert isinstance(results[0], Sent)
        assert isinstance(results[1], PermanentProviderError)
        assert route.calls.last.request.url.params.get_list("request_id") == ["mb-1"]

    async def test_empty_batch(self, router: respx.Router, provider: JsonApiProvider) -> None:
        """Nothing to send, no request."""
        route = router.post(URL)
        assert await provider.send([]) == []
        assert not route.called
