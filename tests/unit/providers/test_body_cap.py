"""Provider bodies are read up to BODY_LIMIT: a real loopback server, the real client."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from mailbridge.errors import TemporaryProviderError
from mailbridge.providers.base import BODY_LIMIT, http_request
from mailbridge.providers.factory import build_client
from mailbridge.settings import ProviderSettings
from tests.fakes.big_body import ACCEPTED, BodyServer, serving

BIG = 30 * 1024 * 1024


SETTINGS = ProviderSettings(name="p", type="miatel", url="http://127.0.0.1/")


class TestBodyCap:
    @pytest.mark.parametrize(("gzipped", "chunked"), [(False, False), (False, True), (True, False)])
    async def test_huge_body_is_a_temporary_error(self, gzipped: bool, chunked: bool) -> None:
        """30 MB of answer (plain, chunked, or a gzip bomb): temporary error, one warning line."""
        server = BodyServer(BIG, gzipped=gzipped, chunked=chunked)
        client = build_client(SETTINGS)
        async with serving(server) as url:
            with capture_logs() as logs, pytest.raises(TemporaryProviderError) as info:
                await http_request(client, "GET", url, name="p", deadline_s=10)
        await client.aclose()
        assert f"larger than {BODY_LIMIT} bytes" in str(info.value)
        warnings = [e for e in logs if e["event"] == "provider answer too large"]
        assert len(warnings) == 1
        assert warnings[0]["log_level"] == "warning"
        assert server.sent < BIG // 2  # the read stopped; the rest was never taken

    async def test_body_under_the_cap_is_read(self) -> None:
        """An answer just under the cap is read whole."""
        server = BodyServer(BODY_LIMIT - 100)
        client = build_client(SETTINGS)
        async with serving(server) as url:
            response = await http_request(client, "GET", url, name="p", deadline_s=10)
        await client.aclose()
        assert response.status_code == 202
        assert len(response.content) == BODY_LIMIT - 100 + len(ACCEPTED)
        assert response.text.startswith("0: Accepted")
