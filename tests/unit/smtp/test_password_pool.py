"""The SMTP side's password check (``mailbridge.smtp.passwords.PasswordPool``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailbridge.core.passwords import hash_password
from mailbridge.smtp.passwords import PasswordPool

GOOD = hash_password("right")
OTHER = hash_password("other")


@pytest.fixture
def pool() -> Iterator[PasswordPool]:
    p = PasswordPool(2)
    yield p
    p.close()


@pytest.mark.parametrize("here", [False, True])
async def test_first_match_by_index_then_from_the_cache(pool: PasswordPool, here: bool) -> None:
    check = pool.check_here if here else pool.check
    pairs = [("a", "right", OTHER), ("b", "right", GOOD), ("c", "right", GOOD)]
    assert await check(pairs) == 1
    assert pool._cache.check("b", "right", GOOD)  # remembered
    assert not pool._cache.check("c", "right", GOOD)  # only the first match
    assert await check([("b", "right", GOOD)]) == 0


@pytest.mark.parametrize("here", [False, True])
async def test_no_match_is_none_and_not_cached(pool: PasswordPool, here: bool) -> None:
    check = pool.check_here if here else pool.check
    pairs = [("a", "wrong", GOOD), ("b", "wrong", OTHER)]
    assert await check(pairs) is None
    assert not pool._cache.check("a", "wrong", GOOD)
    assert await check([]) is None
