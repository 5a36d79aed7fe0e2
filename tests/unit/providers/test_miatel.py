"""Unit tests for the Miatel adapter (mailbridge.providers.miatel) against respx."""

from __future__ import annotations

from urllib.parse import urlencode

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
from mailbridge.providers.miatel import (
    MiatelAnswer,
    MiatelProvider,
    classify_miatel_code,
    parse_miatel_answer,
)
from mailbridge.settings import ProviderSettings
from tests.unit.providers.conftest import PASSWORD, outbound

URL = "https://sms-hub.test:4849/sendsms"
UUID = "1111e111-2d22-3c33-4b44-55555a555555"
SETTINGS = ProviderSettings(
    name="mia", type="miatel", url=URL, username="client", password=PASSWORD, timeout_s=5
)


def failed(code: int, status: int = 255) -> str:
    return f"<html><body>4: Failed to send sms. status:{status}. code:-{code}</body></html>"


@pytest.fixture
def provider(client: httpx.AsyncClient) -> MiatelProvider:
    return MiatelProvider(SETTINGS, client)


class TestParse:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (
                f"<html><body>0: Accepted for delivery. id:{UUID}. count:1. code:0</body></html>",
                MiatelAnswer(accepted=True, id=UUID, count=1),
            ),
            (
                f"0: Accepted for delivery. id:{UUID}. count:003. code:0",
                MiatelAnswer(accepted=True, id=UUID, count=3),
            ),
            (failed(5002), MiatelAnswer(accepted=False, code=5002)),
            (
                "42: Failed to send sms. status:255. code:5063",
                MiatelAnswer(accepted=False, code=5063),
            ),
            ("<html><body>Accepted, sort of</body></html>", None),
            ("", None),
            ("0: Failed. status:1. code:-3", None),
        ],
    )
    def test_answers(self, body: str, expected: MiatelAnswer | None) -> None:
        """Both answer templates read, with or without the HTML wrapper."""
        assert parse_miatel_answer(body) == expected

    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            (5003, "account"),
            (5048, "account"),
            (5037, "item"),
            (10, "item"),
            (5036, "item"),
            (5063, "item"),
            (88, "rate"),
            (1009, "rate"),
            (5050, "account"),  # balance too low: a provider fault (SPEC §4)
            (1019, "temporary"),
            (5002, "temporary"),
        ],
    )
    def test_code_mapping(self, code: int, kind: str) -> None:
        """Each documented code has its outcome."""
        assert classify_miatel_code(code) == kind


class TestSend:
    async def test_success(self, router: respx.Router, provider: MiatelProvider) -> None:
        """202 with the accepted template gives Sent with id and parts."""
        body = f"<html><body>0: Accepted for delivery. id:{UUID}. count:002. code:0</body></html>"
        router.get(URL).mock(return_value=httpx.Response(202, text=body))
        [result] = await provider.send([outbound()])
        assert result == Sent(provider_id=UUID, answer=body, parts=2)

    async def test_request_parameters(self, router: respx.Router, provider: MiatelProvider) -> None:
        """The query carries credentials, digits without +, sender, text and the request id."""
        route = router.get(URL).mock(
            return_value=httpx.Response(202, text=f"0: Accepted. id:{UUID}. count:1. code:0")
        )
        await provider.send([outbound(text="Привет & bye", request_id="r-9")])
        params = dict(route.calls.last.request.url.params)
        assert params == {
            "username": "client",
            "password": PASSWORD,
            "from": "Alex",
            "to": "79991234567",
            "text": "Привет & bye",
            "comment": "r-9",
        }

    @pytest.mark.parametrize("sender", ["Alex", ""])
    async def test_query_order_and_encoding(
        self, router: respx.Router, provider: MiatelProvider, sender: str
    ) -> None:
        """The query string is exactly the seed's parameter order, form-encoded (space as +)."""
        route = router.get(URL).mock(
            return_value=httpx.Response(202, text=f"0: Accepted. id:{UUID}. count:1. code:0")
        )
        await provider.send([outbound(text="Привет & bye", request_id="r 9", sender=sender)])
        pairs = [("username", "client"), ("password", PASSWORD)]
        pairs += [("from", sender)] if sender else []
        pairs += [("to", "79991234567"), ("text", "Привет & bye"), ("comment", "r 9")]
        assert route.calls.last.request.url.query.decode() == urlencode(pairs)

    async def test_no_sender_no_from(self, router: respx.Router, provider: MiatelProvider) -> None:
        """An empty sender leaves ``from`` out."""
        route = router.get(URL).mock(
            return_value=httpx.Response(202, text=f"0: Accepted. id:{UUID}. count:1. code:0")
        )
        await provider.send([outbound(sender="")])
        assert "from" not in route.calls.last.request.url.params

    @pytest.mark.parametrize("code", [5037, 10, 5011, 5036, 5038])
    async def test_item_rejection_is_returned(
        self, router: respx.Router, provider: MiatelProvider, code: int
    ) -> None:
        """A refusal of this SMS is a permanent result, not a raised error."""
        router.get(URL).mock(return_value=httpx.Response(404, text=failed(code)))
        [result] = await provider.send([outbound()])
        assert isinstance(result, PermanentProviderError)
        assert f"code {code}" in str(result)

    @pytest.mark.parametrize("code", [5003, 5048])
    async def test_account_refusal_is_raised(
        self, router: respx.Router, provider: MiatelProvider, code: int
    ) -> None:
        """A disabled account is a provider fault: raised for the whole request, not the SMS's."""
        router.get(URL).mock(return_value=httpx.Response(404, text=failed(code)))
        with pytest.raises(ProviderUnavailableError, match="account refused"):
            await provider.send([outbound()])

    @pytest.mark.parametrize(("code", "retry_after"), [(88, 1.0), (1009, 1.0), (5050, None)])
    async def test_temporary_codes(
        self, router: respx.Router, provider: MiatelProvider, code: int, retry_after: float | None
    ) -> None:
        """Limits and balance are temporary; rate limits hint a short wait."""
        router.get(URL).mock(return_value=httpx.Response(404, text=failed(code)))
        with pytest.raises(TemporaryProviderError) as info:
            await provider.send([outbound()])
        assert info.value.retry_after_s == retry_after

    @pytest.mark.parametrize("status", [401, 403])
    async def test_http_auth_refusal(
        self, router: respx.Router, provider: MiatelProvider, status: int
    ) -> None:
        """HTTP 401/403 means the credentials were refused: a provider fault."""
        router.get(URL).mock(return_value=httpx.Response(status, text="denied"))
        with pytest.raises(ProviderUnavailableError, match="credentials refused"):
            await provider.send([outbound()])

    @pytest.mark.parametrize(
        ("status", "header", "retry_after"),
        [(429, "4", 4.0), (503, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (500, None, None)],
    )
    async def test_transient_http(
        self,
        router: respx.Router,
        provider: MiatelProvider,
        status: int,
        header: str | None,
        retry_after: float | None,
    ) -> None:
        """429 and 5xx are temporary, Retry-After read as seconds or a date."""
        headers = {"Retry-After": header} if header else {}
        router.get(URL).mock(return_value=httpx.Response(status, headers=headers))
        with pytest.raises(TemporaryProviderError) as info:
            await provider.send([outbound()])
        assert info.value.retry_after_s == retry_after

    @pytest.mark.parametrize(
        ("status", "body"),
        [(202, "<html><body>Accepted?</body></html>"), (200, ""), (404, "Not Found")],
    )
    async def test_unreadable_answer_is_temporary(
        self, router: respx.Router, provider: MiatelProvider, status: int, body: str
    ) -> None:
        """A body in neither template may hide an accepted SMS: temporary."""
        router.get(URL).mock(return_value=httpx.Response(status, text=body))
        with pytest.raises(TemporaryProviderError, match="unreadable answer"):
            await provider.send([outbound()])

    async def test_connection_error(self, router: respx.Router, provider: MiatelProvider) -> None:
        """A refused connection is temporary."""
        router.get(URL).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(TemporaryProviderError, match="connection failed"):
            await provider.send([outbound()])

    @pytest.mark.parametrize(
        ("status", "body"),
        [(404, failed(5003)), (404, failed(5037)), (202, "garbled"), (503, "down"), (401, "")],
    )
    async def test_password_never_in_error_text(
        self, router: respx.Router, provider: MiatelProvider, status: int, body: str
    ) -> None:
        """A body echoing the password is redacted from every error text."""
        router.get(URL).mock(
            return_value=httpx.Response(status, text=f"{body} password={PASSWORD}")
        )
        try:
            [result] = await provider.send([outbound()])
        except (PermanentProviderError, TemporaryProviderError) as exc:
            result = exc
        assert isinstance(result, PermanentProviderError | TemporaryProviderError)
        assert PASSWORD not in str(result)
        assert PASSWORD not in result.provider_answer
        assert "***" in result.provider_answer

    async def test_format_not_carried(self, router: respx.Router, provider: MiatelProvider) -> None:
        """Formats other than 0 fail without a request."""
        route = router.get(URL)
        [result] = await provider.send([outbound(format=Format.FLASH)])
        assert isinstance(result, PermanentProviderError)
        assert not route.called

    async def test_one_recipient_per_request(self, provider: MiatelProvider) -> None:
        """Miatel takes one SMS per request."""
        assert provider.max_batch == 1
        assert provider.formats == frozenset({Format.SMS})
        with pytest.raises(ValueError, match="max_batch"):
            await provider.send([outbound(), outbound(sms_id=8)])


async def test_low_balance_is_a_provider_fault(
    router: respx.Router, provider: MiatelProvider
) -> None:
    """Code 5050 (balance too low) refuses the account, not this SMS: a provider fault."""
    router.get(URL).mock(return_value=httpx.Response(404, text=failed(5050)))
    with pytest.raises(ProviderUnavailableError, match="balance"):
        await provider.send([outbound()])
