"""Unit tests for mailbridge.providers.factory."""

from __future__ import annotations

import httpx
import pytest

from mailbridge.errors import ConfigError
from mailbridge.models import Format
from mailbridge.providers import (
    FileProvider,
    JsonApiProvider,
    MiatelProvider,
    Provider,
    SmscProvider,
    build_providers,
)
from mailbridge.providers.factory import build_client
from mailbridge.settings import ProviderSettings


def conf(name: str, type: str, **overrides: object) -> ProviderSettings:
    fields: dict[str, object] = {"name": name, "type": type, "url": "https://p.test/send"}
    fields.update(overrides)
    return ProviderSettings(**fields)  # type: ignore[arg-type]


class TestBuildProviders:
    async def test_every_type(self) -> None:
        """Each type gets its adapter, keyed by name, in order, all Providers."""
        providers = build_providers(
            [
                conf("a", "miatel"),
                conf("b", "jsonapi", max_recipients=50),
                conf("c", "smsc", formats=frozenset({Format.SMS, Format.VIBER})),
                conf("d", "file", url="", path="/tmp/never-written.jsonl"),
            ]
        )
        try:
            assert list(providers) == ["a", "b", "c", "d"]
            assert [type(p) for p in providers.values()] == [
                MiatelProvider,
                JsonApiProvider,
                SmscProvider,
                FileProvider,
            ]
            assert all(isinstance(p, Provider) for p in providers.values())
            assert providers["b"].max_batch == 50
            assert providers["c"].formats == frozenset({Format.SMS, Format.VIBER})
        finally:
            for provider in providers.values():
                await provider.aclose()

    @pytest.mark.parametrize(
        ("settings", "key"),
        [
            ([conf("a", "carrier-pigeon")], "providers.a.type"),
            ([conf("a", "miatel", formats=frozenset({Format.FLASH}))], "providers.a.formats"),
            ([conf("a", "jsonapi", formats=frozenset())], "providers.a.formats"),
            ([conf("a", "smsc", url="")], "providers.a.url"),
            ([conf("a", "smsc", timeout_s=0.0)], "providers.a.timeout_s"),
            ([conf("a", "file"), conf("a", "file")], "providers.a.name"),
        ],
    )
    def test_config_errors_name_the_key(self, settings: list[ProviderSettings], key: str) -> None:
        """A provider that cannot be built is a ConfigError naming its key."""
        with pytest.raises(ConfigError) as info:
            build_providers(settings)
        assert info.value.key == key


class TestBuildClient:
    async def test_timeouts_and_headers(self) -> None:
        """The client uses the provider's timeouts and names mailbridge."""
        client = build_client(conf("a", "miatel", timeout_s=7.0, connect_timeout_s=2.0))
        try:
            assert client.timeout == httpx.Timeout(7.0, connect=2.0)
            assert client.headers["user-agent"].startswith("mailbridge/")
            assert not client.follow_redirects
        finally:
            await client.aclose()

    async def test_cookies_are_neither_kept_nor_sent(self) -> None:
        """A ``Set-Cookie`` answer leaves the jar empty: the next request has no Cookie header."""
        client = build_client(conf("a", "miatel"))
        try:
            request = client.build_request("GET", "https://p.test/send")
            answer = httpx.Response(
                202,
                headers=[("Set-Cookie", "session=abc; Path=/"), ("Set-Cookie", "b=2")],
                request=request,
            )
            client.cookies.extract_cookies(answer)
            client.cookies.set("manual", "1", domain="p.test")
            assert len(client.cookies) == 0
            assert "cookie" not in client.build_request("GET", "https://p.test/send").headers
        finally:
            await client.aclose()
