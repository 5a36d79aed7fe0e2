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


class PasswordPool:
    """Checks (key, password, stored hash) triples: cached, else in ``workers`` threads."""

    def __init__(self, workers: int = 4) -> None:
        self._cache = VerifiedCache()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailbridge-hash")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def check(self, pairs: Sequence[tuple[str, str, str]]) -> int | None:
        """Index of the first (key, password, stored) that matches, checking all of them.

        Cached credentials answer at once; the rest run scrypt in the hash pool,
        every one of them (no early exit), so timing does not tell which failed.
        """
        for i, (key, password, stored) in enumerate(pairs):
            if self._cache.check(key, password, stored):
                return i

        def run() -> list[bool]:
            return [verify_password(password, stored) for _, password, stored in pairs]

        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._pool, run)
        for i, ok in enumerate(results):
            if ok:
                key, password, stored = pairs[i]
                self._cache.remember(key, password, stored)
                return i
        return None
