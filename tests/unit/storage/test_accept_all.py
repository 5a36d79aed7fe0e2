"""``accept_all``: the requests of one mail to several kinds of recipient, all or none, on
every backend."""

from __future__ import annotations

from tests.pg import pg_cluster_fixture  # noqa: F401 (the session's server)
from tests.unit.storage.test_storage import (
    LIMITS,
    RATE,
    T0,
    Backend,
    backend,  # noqa: F401  (the fixture)
    intake,
    message,
    sms_request,
)


async def test_all_stored_in_one_go(backend: Backend) -> None:  # noqa: F811
    storage = backend.storage
    first = intake(sms_request(message(recipients=("+79990000001",))))
    second = intake(sms_request(message(recipients=("+79990000002",))))
    results = await storage.accept_all(
        [first, second], limits=LIMITS, reply_rate_per_hour=RATE, now=T0
    )
    assert [r.error for r in results] == [None, None]
    assert [r.request_id for r in results] == ["1", "2"]
    assert len(await storage.list_requests()) == 2


async def test_one_refusal_stores_nothing(backend: Backend) -> None:  # noqa: F811
    """The second request is over the account's balance (3): neither is stored, and the
    first one's balance charge is rolled back with it."""
    storage = backend.storage
    ok = intake(sms_request(message(recipients=("+79990000001",))), balance=1)
    over = intake(
        sms_request(message(recipients=("+79990000002", "+79990000003"))),
        balance=1,
    )
    results = await storage.accept_all([ok, over], limits=LIMITS, reply_rate_per_hour=RATE, now=T0)
    assert [r.error for r in results] == [3]
    assert await storage.list_requests() == []
    # nothing was charged: the one-part request alone still fits the balance of 1
    alone = await storage.accept(ok, limits=LIMITS, reply_rate_per_hour=RATE, now=T0)
    assert alone.error is None
