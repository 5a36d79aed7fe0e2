"""Fixtures for the provider adapter unit tests: a respx router behind an injected client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx

from mailbridge.models import Format
from mailbridge.providers.base import Outbound

PASSWORD = "pa ss&w0rd=+%"  # needs URL-encoding in every form


def outbound(**overrides: Any) -> Outbound:
    """An SMS with sensible defaults, any field overridden."""
    fields: dict[str, Any] = {
        "sms_id": 7,
        "request_id": "42",
        "recipient": "+79991234567",
        "text": "hello",
        "sender": "Alex",
        "format": Format.SMS,
    }
    fields.update(overrides)
    return Outbound(**fields)


@pytest.fixture
def router() -> respx.Router:
    """A respx router; nothing is mocked globally."""
    return respx.Router(assert_all_called=False)


@pytest.fixture
async def client(router: respx.Router) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient whose transport is ``router``."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as c:
        yield c


OutboundFactory = Callable[..., Outbound]
