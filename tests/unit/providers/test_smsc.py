"""Unit tests for the SMSC adapter (mailbridge.providers.smsc) against respx."""

from __future__ import annotations

from urllib.parse import parse_qsl

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
from mailbridge.providers.smsc import SmscProvider, classify_smsc_code
from mailbridge.settings import ProviderSettings
from tests.unit.providers.conftest import PASSWORD, outbound

URL = "https://smsc.test/sys/send.php"
SETTINGS = ProviderSettings(name="smsc", type="smsc", url=URL, username="alex", password=PASSWORD)


@pytest.fixture
def provider(client: httpx.AsyncClient) -> SmscProvider:
    return SmscProvider(SETTINGS, client)


def form_of(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


class TestForm:
    @pytest.mark.parametrize(
        ("fmt", "extra"),
        [
            (Format.SMS, {}),
            (Format.FLASH, {"flash": "1"}),
            (Format.WAP_PUSH, {"push": "1"}),
            (Format.HLR, {"hlr": "1"}),
            (Format.BINARY, {"bin": "1"}),
            (Format.BINARY_HEX, {"bin": "2"}),
            (Format.PING, {"ping": "1"}),
            (Format.MMS, {"mms": "1"}),
            (Format.EMAIL, {"mail": "1"}),
            (Format.VOICE, {"call": "1"}),
            (Format.VIBER, {"viber": "1"}),
            (Format.WHATSAPP, {"bot": "wa:Alex"}),
            (Format.SOCIAL, {"soc": "1"}),
        ],
    )
    def test_each_format(self, provider: SmscProvider, fmt: Format, extra: dict[str, str]) -> None:
        """Every format adds SMSC's own parameter to the base form."""
        base = {
            "login": "alex",
            "psw": PASSWORD,
            "phones": "+79991234567",
            "mes": "hello",
            "id": "mb-7",
            "sender": "Alex",
            "fmt": "3",
            "charset": "utf-8",
        }
        assert provider.form(outbound(format=fmt)) == base | extra

    def test_mail_subject_and_voice_parameters(self, provider: SmscProvider) -> None:
        """subj goes with format 8; voice and param with format 9."""
        mail = provider.form(outbound(format=Format.EMAIL, recipient="a@b.test", subject="Hi"))
        assert (mail["phones"], mail["subj"]) == ("a@b.test", "Hi")
        call = provider.form(outbound(format=Format.VOICE, voice="w2", param="10,5,3"))
        assert (call["voice"], call["param"]) == ("w2", "10,5,3")
        assert "subj" not in provider.form(outbound(subject="ignored"))

    def test_empty_sender_left_out(self, provider: SmscProvider) -> None:
        """No sender field when the SMS has none."""
        assert "sender" not in provider.form(outbound(sender=""))

    def test_carries_every_format(self, provider: SmscProvider) -> None:
        """SMSC carries 0..12, one SMS per request."""
        assert provider.formats == frozenset(Format)
        assert provider.max_batch == 1


class TestAnswers:
    async def test_success(self, router: respx.Router, provider: SmscProvider) -> None:
        """{"id", "cnt"} gives Sent with parts."""
        route = router.post(URL).mock(
            return_value=httpx.Response(200, json={"id": "mb-7", "cnt": 2})
        )
        [result] = await provider.send([outbound()])
        assert result == Sent(provider_id="mb-7", answer='{"id":"mb-7","cnt":2}', parts=2)
        assert form_of(route.calls.last.request)["psw"] == PASSWORD

    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            (1, "item"),
            (2, "account"),
            (3, "account"),  # insufficient funds: a provider fault (SPEC §4)
            (4, "slow_down"),
            (5, "item"),
            (6, "item"),
            (7, "item"),
            (8, "item"),
            (9, "slow_down"),
            (10, "temporary"),
        ],
    )
    def test_code_mapping(self, code: int, kind: str) -> None:
        """Each SMSC error code has its outcome."""
        assert classify_smsc_code(code) == kind

    @pytest.mark.parametrize("code", [1, 5, 6, 7, 8, "7", -7])
    async def test_item_errors_are_returned(
        self, router: respx.Router, provider: SmscProvider, code: int | str
    ) -> None:
        """Refusals of this SMS are permanent results."""
        router.post(URL).mock(
            return_value=httpx.Response(200, json={"error": "x", "error_code": code, "id": 7})
        )
        [result] = await provider.send([outbound()])
        assert isinstance(result, PermanentProviderError)

    async def test_bad_credentials_raise(
        self, router: respx.Router, provider: SmscProvider
    ) -> None:
        """Error 2 is a provider fault: raised for the whole request, not the SMS's."""
        router.post(URL).mock(
            return_value=httpx.Response(200, json={"error": "authorise error", "error_code": 2})
        )
        with pytest.raises(ProviderUnavailableError, match="credentials refused"):
            await provider.send([outbound()])

    @pytest.mark.parametrize(("code", "retry_after"), [(3, None), (4, 60.0), (9, 60.0), (99, None)])
    async def test_temporary_codes(
        self, router: respx.Router, provider: SmscProvider, code: int, retry_after: float | None
    ) -> None:
        """Funds, IP block, too many requests and unknown codes are temporary."""
        router.post(URL).mock(
            return_value=httpx.Response(200, json={"error": "x", "error_code": code})
        )
        with pytest.raises(TemporaryProviderError) as info:
            await provider.send([outbound()])
        assert info.value.retry_after_s == retry_after

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (200, "OK - 1 SMS, ID - 7"),
            (200, '{"cnt": 1}'),
            (200, '{"error": "x", "error_code": "??"}'),
            (200, "[]"),
            (404, "Not Found"),
        ],
    )
    async def test_unreadable_answer_is_temporary(
        self, router: respx.Router, provider: SmscProvider, status: int, body: str
    ) -> None:
        """A body that is neither answer is temporary."""
        router.post(URL).mock(return_value=httpx.Response(status, text=body))
        with pytest.raises(TemporaryProviderError, match="unreadable"):
            await provider.send([outbound()])

    @pytest.mark.parametrize(
        ("status", "header", "retry_after"),
        [(429, "2", 2.0), (429, "Thu, 01 Jan 1970 00:00:00 GMT", 0.0), (502, None, None)],
    )
    async def test_transient_http(
        self,
        router: respx.Router,
        provider: SmscProvider,
        status: int,
        header: str | None,
        retry_after: float | None,
    ) -> None:
        """429 and 5xx are temporary with the Retry-After hint."""
        headers = {"Retry-After": header} if header else {}
        router.post(URL).mock(return_value=httpx.Response(status, headers=headers))
        with pytest.raises(TemporaryProviderError) as info:
            await provider.send([outbound()])
        assert info.value.retry_after_s == retry_after

    @pytest.mark.parametrize("code", [2, 7, 9])
    async def test_password_never_in_error_text(
        self, router: respx.Router, provider: SmscProvider, code: int
    ) -> None:
        """An error body quoting the password is redacted."""
        body = {"error": f"bad psw={PASSWORD}", "error_code": code}
        router.post(URL).mock(return_value=httpx.Response(200, json=body))
        try:
            [result] = await provider.send([outbound()])
        except (PermanentProviderError, TemporaryProviderError) as exc:
            result = exc
        assert isinstance(result, PermanentProviderError | TemporaryProviderError)
        assert PASSWORD not in str(result)
        assert PASSWORD not in result.provider_answer

    async def test_timeout(self, router: respx.Router, provider: SmscProvider) -> None:
        """A read timeout is temporary."""
        router.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(TemporaryProviderError, match="read timed out"):
            await provider.send([outbound()])

    async def test_narrowed_formats(self, client: httpx.AsyncClient, router: respx.Router) -> None:
        """A provider narrowed by formats refuses the others without a request."""
        narrowed = SmscProvider(
            ProviderSettings(
                name="s", type="smsc", url=URL, formats=frozenset({Format.SMS, Format.VIBER})
            ),
            client,
        )
        route = router.post(URL)
        [result] = await narrowed.send([outbound(format=Format.FLASH)])
        assert isinstance(result, PermanentProviderError)
        assert not route.called


async def test_insufficient_funds_is_a_provider_fault(
    router: respx.Router, provider: SmscProvider
) -> None:
    """Error 3 (insufficient funds) refuses the account, not this SMS: a provider fault."""
    router.post(URL).mock(return_value=httpx.Response(200, json={"error": "x", "error_code": 3}))
    with pytest.raises(ProviderUnavailableError, match="insufficient funds"):
        await provider.send([outbound()])
