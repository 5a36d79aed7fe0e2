"""SMSC's HTTP status query (``status.php``) as receipts, against respx."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from mailbridge.errors import PermanentProviderError, TemporaryProviderError
from mailbridge.providers.events import Receipt, ReceiptState, SentSms, StatusQuery
from mailbridge.providers.smsc import SmscProvider, parse_status, status_url
from mailbridge.settings import ProviderSettings
from tests.unit.providers.conftest import PASSWORD

URL = "https://smsc.test/sys/send.php"
STATUS = "https://smsc.test/sys/status.php"
SETTINGS = ProviderSettings(name="smsc", type="smsc", url=URL, username="alex", password=PASSWORD)
NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
STAMP = 1_780_000_000


def sent(n: int = 1) -> SentSms:
    """An SMS SMSC took as ``mb-<n>``."""
    return SentSms(sms_id=n, recipient=f"+7999123456{n}", message_id=f"mb-{n}", sent_at=NOW)


@pytest.fixture
def provider(client: httpx.AsyncClient) -> SmscProvider:
    return SmscProvider(SETTINGS, client)


class TestUrl:
    @pytest.mark.parametrize(
        ("send", "status"),
        [
            (URL, STATUS),
            ("https://smsc.test/sys/send.php?x=1", STATUS),
            ("http://127.0.0.1:8080/smsc/send.php", "http://127.0.0.1:8080/smsc/status.php"),
            ("https://smsc.test", "https://smsc.test/status.php"),
        ],
    )
    def test_status_beside_send(self, send: str, status: str) -> None:
        """status.php sits in the folder of send.php."""
        assert status_url(send) == status


class TestParse:
    @pytest.mark.parametrize(
        ("code", "word", "state"),
        [
            (1, "DELIVERED", ReceiptState.DELIVERED),
            (2, "READ", ReceiptState.DELIVERED),
            (4, "CLICKED", ReceiptState.DELIVERED),
            (3, "EXPIRED", ReceiptState.EXPIRED),
            (20, "UNDELIVERABLE", ReceiptState.FAILED),
            (22, "INVALID_NUMBER", ReceiptState.FAILED),
            (23, "PROHIBITED", ReceiptState.FAILED),
            (24, "NO_FUNDS", ReceiptState.FAILED),
            (25, "UNAVAILABLE", ReceiptState.FAILED),
            (0, "TRANSFERRED", ReceiptState.PENDING),
            (-1, "WAITING", ReceiptState.PENDING),
        ],
    )
    def test_codes(self, code: int, word: str, state: ReceiptState) -> None:
        """Each SMSC status code gives its receipt state, the time from last_timestamp."""
        receipt = parse_status(
            {"status": code, "last_timestamp": STAMP, "err": 0},
            provider="smsc",
            message_id="mb-1",
            now=NOW,
        )
        assert receipt == Receipt(
            provider="smsc",
            message_id="mb-1",
            state=state,
            status=word,
            error_code=None,
            at=datetime.fromtimestamp(STAMP, UTC),
        )

    def test_error_code_and_missing_time(self) -> None:
        """A non-zero err is the error code; no timestamp: now."""
        receipt = parse_status(
            {"status": "20", "err": "249"}, provider="p", message_id="1", now=NOW
        )
        assert receipt is not None
        assert (receipt.error_code, receipt.at) == ("249", NOW)

    @pytest.mark.parametrize(
        "document", [{"status": -3}, {"status": 99}, {"status": "x"}, [], None, {"id": 1}]
    )
    def test_no_receipt(self, document: object) -> None:
        """Not found, unknown codes and odd bodies give no receipt."""
        assert parse_status(document, provider="p", message_id="1", now=NOW) is None


class TestQuery:
    def test_is_a_status_query(self, provider: SmscProvider) -> None:
        """The adapter offers the status protocol with its configured interval."""
        assert isinstance(provider, StatusQuery)
        assert provider.status_poll_s == 60.0

    async def test_one_post_per_sms(self, router: respx.Router, provider: SmscProvider) -> None:
        """Each SMS is asked with login, password, phone, id and fmt=3 in a POST form."""
        answers = iter(
            [
                httpx.Response(200, json={"status": 1, "last_timestamp": STAMP, "err": 0}),
                httpx.Response(200, json={"status": 20, "last_timestamp": STAMP, "err": 1}),
                httpx.Response(200, json={"status": -3}),
            ]
        )
        route = router.post(STATUS).mock(side_effect=lambda _req: next(answers))
        receipts = await provider.query_status([sent(1), sent(2), sent(3)], now=NOW)
        assert [(r.message_id, r.state, r.error_code) for r in receipts] == [
            ("mb-1", ReceiptState.DELIVERED, None),
            ("mb-2", ReceiptState.FAILED, "1"),
        ]
        forms = [dict(parse_qsl(c.request.content.decode())) for c in route.calls]
        assert forms[0] == {
            "login": "alex",
            "psw": PASSWORD,
            "phone": "+79991234561",
            "id": "mb-1",
            "fmt": "3",
        }
        assert PASSWORD not in str(route.calls[0].request.url)

    async def test_credentials_refused(self, router: respx.Router, provider: SmscProvider) -> None:
        """Error 2 is a provider fault: raised permanent, password not shown."""
        router.post(STATUS).mock(
            return_value=httpx.Response(200, json={"error": "authorise error", "error_code": 2})
        )
        with pytest.raises(PermanentProviderError) as info:
            await provider.query_status([sent()], now=NOW)
        assert PASSWORD not in str(info.value)

    async def test_too_many_requests(self, router: respx.Router, provider: SmscProvider) -> None:
        """Error 9 ends the round with a temporary error asking to wait."""
        router.post(STATUS).mock(
            return_value=httpx.Response(200, json={"error": "too many", "error_code": 9})
        )
        with pytest.raises(TemporaryProviderError) as info:
            await provider.query_status([sent()], now=NOW)
        assert info.value.retry_after_s == 60.0

    async def test_item_error_skipped(self, router: respx.Router, provider: SmscProvider) -> None:
        """An error about one SMS (bad id) gives no receipt for it, the others still asked."""
        answers = iter(
            [
                httpx.Response(200, json={"error": "bad id", "error_code": 1}),
                httpx.Response(200, json={"status": 3, "last_timestamp": STAMP}),
            ]
        )
        router.post(STATUS).mock(side_effect=lambda _req: next(answers))
        receipts = await provider.query_status([sent(1), sent(2)], now=NOW)
        assert [(r.message_id, r.state) for r in receipts] == [("mb-2", ReceiptState.EXPIRED)]

    async def test_server_error_raises(self, router: respx.Router, provider: SmscProvider) -> None:
        """HTTP 503 is temporary."""
        router.post(STATUS).mock(return_value=httpx.Response(503, text="down"))
        with pytest.raises(TemporaryProviderError):
            await provider.query_status([sent()], now=NOW)
