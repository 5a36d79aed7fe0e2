"""Password and API key hashes for ``[[accounts]]`` (SPEC §1, §5).

A stored hash is self-describing, its cost parameters inside::

    $scrypt$ln=14,r=8,p=1$<salt>$<hash>

``ln`` is log2 of the scrypt cost N, ``r`` the block size, ``p`` the
parallelism; ``<salt>`` (16 bytes) and ``<hash>`` (32 bytes) are base64
without padding. scrypt (``hashlib.scrypt``, standard library, no extra
dependency) is memory-hard: N=2**14, r=8 needs 16 MiB per guess, which
makes guessing on GPUs and ASICs expensive where a fast hash (SHA-2) or a
CPU-only one (PBKDF2) is cheap to attack.

``plain:<password>`` is also read, for configs that keep a plain password
(the config loader turns ``password = "…"`` into it and warns).

Checking a password costs one scrypt run (tens of milliseconds), which would
cap the gateway at a few dozen mails per second per core. ``VerifiedCache``
remembers, for each credential that once verified, an HMAC of the password
under a random per-process key, so the next mail with the same login and
password is checked in microseconds; the password itself is never kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "DUMMY_HASH",
    "PLAIN_PREFIX",
    "VerifiedCache",
    "hash_password",
    "is_readable_hash",
    "verify_password",
]

#: Prefix of a password kept in plain text in the config.
PLAIN_PREFIX = "plain:"

_LN = 14  # N = 2**14
_R = 8
_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
#: Largest memory a stored hash may ask for (128 * r * N bytes): 256 MiB.
_MAX_MEMORY = 256 * 1024 * 1024
_MAX_P = 16

_SCRYPT_RE = re.compile(
    r"\$scrypt\$ln=(?P<ln>[0-9]{1,2}),r=(?P<r>[0-9]{1,3}),p=(?P<p>[0-9]{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)"
)

#: A valid hash of a random password nobody knows. Check against it when the
#: login does not exist, so that an unknown login costs as much as a known one.
DUMMY_HASH = (
    "$scrypt$ln=14,r=8,p=1$iGMv+a1f2beroU6iExhhFw$FgZC/8KEBQiWqn6kxwhPYQxvRIsHwXqdLE4uTKTCvYg"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scrypt:
    ln: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _normalize(password: str) -> bytes:
    # NFC, so that the same password typed on two systems hashes the same.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def _parse_scrypt(stored: str) -> _Scrypt | None:
    m = _SCRYPT_RE.fullmatch(stored)
    if m is None:
        return None
    ln, r, p = int(m["ln"]), int(m["r"]), int(m["p"])
    if not (1 <= ln <= 30 and r >= 1 and 1 <= p <= _MAX_P):
        return None
    if 128 * r * (1 << ln) > _MAX_MEMORY:
        return None
    try:
        salt = _b64decode(m["salt"])
        digest = _b64decode(m["hash"])
    except (binascii.Error, ValueError):
        return None
    if len(salt) < 8 or len(digest) < 16:
        return None
    return _Scrypt(ln=ln, r=r, p=p, salt=salt, digest=digest)


def _scrypt(password: bytes, *, salt: bytes, ln: int, r: int, p: int, dklen: int) -> bytes:
    n = 1 << ln
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)


def hash_password(password: str) -> str:
    """Hash ``password`` with scrypt and a fresh random salt, for the config."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(_normalize(password), salt=salt, ln=_LN, r=_R, p=_P, dklen=_HASH_BYTES)
    return f"$scrypt$ln={_LN},r={_R},p={_P}${_b64encode(salt)}${_b64encode(digest)}"


def is_readable_hash(stored: str) -> bool:
    """Whether ``stored`` is a hash this version can check (scrypt or ``plain:``)."""
    if stored.startswith(PLAIN_PREFIX):
        return len(stored) > len(PLAIN_PREFIX)
    return _parse_scrypt(stored) is not None


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; constant time in the password.

    An unreadable ``stored`` never matches.
    """
    if stored.startswith(PLAIN_PREFIX):
        expected = stored[len(PLAIN_PREFIX) :]
        if not expected:
            return False
        return hmac.compare_digest(_normalize(password), _normalize(expected))
    parsed = _parse_scrypt(stored)
    if parsed is None:
        return False
    digest = _scrypt(
        _normalize(password),
        salt=parsed.salt,
        ln=parsed.ln,
        r=parsed.r,
        p=parsed.p,
        dklen=len(parsed.digest),
    )
    return hmac.compare_digest(digest, parsed.digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    stored: str
    mac: bytes


class VerifiedCache:
    """Remembers credentials that verified, so the next check skips scrypt.

    ``key`` names one credential: the account login for its password, and
    something distinct (say ``"apikey:" + login``) for its API key. For each
    key the cache keeps the stored hash it was verified against and an
    HMAC-SHA256 of the password under a random key made when the cache is
    created (never written anywhere). A check with another stored hash
    (the config was reloaded with a new one) misses and drops the entry.
    At most ``max_entries`` keys are kept, the least recently used going first.

    Not thread-safe: use it from one thread. To run the slow scrypt check in
    a worker thread, call ``check`` first, then ``verify_password`` in the
    worker, then ``remember`` when it matched.
    """

    __slots__ = ("_entries", "_key", "_max_entries")

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _mac(self, key: str, password: str, stored: str) -> bytes:
        msg = b"\0".join((key.encode("utf-8"), stored.encode("utf-8"), _normalize(password)))
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def check(self, key: str, password: str, stored: str) -> bool:
        """Whether ``password`` verified against ``stored`` before (fast; no scrypt)."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry.stored != stored:
            del self._entries[key]
            return False
        if hmac.compare_digest(entry.mac, self._mac(key, password, stored)):
            self._entries.move_to_end(key)
            return True
        return False

    def remember(self, key: str, password: str, stored: str) -> None:
        """Record that ``password`` matched ``stored`` (call only after it did)."""
        self._entries[key] = _Entry(stored=stored, mac=self._mac(key, password, stored))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def verify(self, key: str, password: str, stored: str) -> bool:
        """``verify_password`` with the cache in front of it."""
        if self.check(key, password, stored):
            return True
        if verify_password(password, stored):
            self.remember(key, password, stored)
            return True
        return False

    def forget(self, key: str) -> None:
        """Drop what is remembered for ``key``."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
