"""Which account a login and password name (SPEC §1: ``<login>:<psw>``, AUTH).

:func:`verify_login` holds the rules — an empty login is an API key tried
against every account that has one, an unknown login or an account without
a password is checked against a dummy hash so that timing does not tell
them apart — and leaves the password check itself to the caller: the SMTP
handler passes its cached, pooled check (:mod:`mailbridge.smtp.passwords`),
``mailbridge parse`` the plain :func:`check_now`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from mailbridge.core.passwords import DUMMY_HASH, verify_password
from mailbridge.settings import Account, Settings

__all__ = ["LoginVerifier", "PasswordCheck", "Verified", "check_now", "verify_login"]

#: (cache key, password, stored hash) triples → index of the first that matches, else None.
#: Every triple is checked (no early exit), so timing does not tell which failed.
PasswordCheck = Callable[[Sequence[tuple[str, str, str]]], Awaitable[int | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """The account a login and password name (None: refused), and whether the login exists."""

    account: Account | None
    login_known: bool


#: ``verify_login`` bound to the settings and a password check: (login, password) → Verified.
LoginVerifier = Callable[[str, str], Awaitable[Verified]]


async def check_now(pairs: Sequence[tuple[str, str, str]]) -> int | None:
    """A :data:`PasswordCheck` that hashes in the caller, without cache (never suspends)."""
    results = [verify_password(password, stored) for _, password, stored in pairs]
    return next((i for i, ok in enumerate(results) if ok), None)


async def verify_login(
    login: str, password: str, *, settings: Settings, check: PasswordCheck
) -> Verified:
    """The account ``login``/``password`` names in ``settings``, checked with ``check``."""
    login = login.strip()
    if not login:
        keyed = [a for a in settings.accounts if a.apikey_hash]
        pairs = [(f"apikey:{a.login}", password, a.apikey_hash or "") for a in keyed]
        if not pairs:
            pairs = [("apikey:", password, DUMMY_HASH)]
            keyed = []
        hit = await check(pairs)
        if hit is None or not keyed:
            return Verified(account=None, login_known=False)
        return Verified(account=keyed[hit], login_known=True)
    account = settings.account(login)
    stored = account.password_hash if account is not None else None
    if account is None or not stored or not password:
        await check([("dummy:", password, DUMMY_HASH)])
        return Verified(account=None, login_known=account is not None)
    hit = await check([(login, password, stored)])
    return Verified(account=account if hit is not None else None, login_known=True)
