"""The password check of the SMTP side: a cache in front of a bounded pool of hashing threads.

scrypt takes milliseconds of CPU; it runs in a small thread pool so that the
event loop keeps serving the other sessions, and a credential that passed
once answers from :class:`~mailbridge.core.passwords.VerifiedCache` at once.
:meth:`PasswordPool.check` is the :data:`~mailbridge.core.login.PasswordCheck`
the core's login rules call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from mailbridge.core.passwords import VerifiedCache, verify_password

__all__ = ["PasswordPool"]

#: (cache key, password given, stored hash)
_Triple = tuple[str, str, str]


class PasswordPool:
    """Checks (key, password, stored hash) triples: cached, else in ``workers`` threads."""

    def __init__(self, workers: int = 4) -> None:
        self._cache = VerifiedCache()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailbridge-hash")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def check_here(self, pairs: Sequence[_Triple]) -> int | None:
        """:meth:`check` in the calling thread (a worker thread already), never suspending."""
        cached = self._cached(pairs)
        if cached is not None:
            return cached
        return self._first_match(pairs, _verify_all(pairs))

    async def check(self, pairs: Sequence[_Triple]) -> int | None:
        """Index of the first (key, password, stored) that matches, checking all of them.

        Cached credentials answer at once; the rest run scrypt in the hash pool,
        every one of them (no early exit), so timing does not tell which failed.
        """
        cached = self._cached(pairs)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._pool, _verify_all, pairs)
        return self._first_match(pairs, results)

    def _cached(self, pairs: Sequence[_Triple]) -> int | None:
        """Index of the first triple that passed before (no hashing), else None."""
        for i, (key, password, stored) in enumerate(pairs):
            if self._cache.check(key, password, stored):
                return i
        return None

    def _first_match(self, pairs: Sequence[_Triple], results: list[bool]) -> int | None:
        """Index of the first triple that ``results`` says matched, remembered in the cache."""
        for i, ok in enumerate(results):
            if ok:
                key, password, stored = pairs[i]
                self._cache.remember(key, password, stored)
                return i
        return None


def _verify_all(pairs: Sequence[_Triple]) -> list[bool]:
    """scrypt for every triple, no early exit."""
    return [verify_password(password, stored) for _, password, stored in pairs]
