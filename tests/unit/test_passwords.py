"""Tests of mailbridge.core.passwords: scrypt hashes, plain passwords, the verification cache."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.core import passwords
from mailbridge.core.passwords import (
    DUMMY_HASH,
    VerifiedCache,
    hash_password,
    is_readable_hash,
    verify_password,
)


@pytest.fixture(scope="module")
def stored() -> str:
    """One hash of 'correct horse', made once for the module (scrypt is slow)."""
    return hash_password("correct horse")


class TestHashPassword:
    def test_format_is_self_describing(self, stored: str) -> None:
        """The hash names scrypt and its parameters, then salt and hash in base64."""
        _, scheme, params, salt, digest = stored.split("$")
        assert scheme == "scrypt"
        assert params == "ln=14,r=8,p=1"
        assert len(base64.b64decode(salt + "==")) == 16
        assert len(base64.b64decode(digest + "=")) == 32

    def test_salt_is_random(self) -> None:
        """Two hashes of one password differ."""
        assert hash_password("same") != hash_password("same")

    def test_password_not_in_hash(self, stored: str) -> None:
        """The hash does not contain the password."""
        assert "correct" not in stored

    def test_empty_password_refused(self) -> None:
        """An empty password cannot be hashed."""
        with pytest.raises(ValueError, match="empty"):
            hash_password("")


class TestVerifyPassword:
    def test_right_password(self, stored: str) -> None:
        """The password that was hashed verifies."""
        assert verify_password("correct horse", stored)

    @pytest.mark.parametrize("wrong", ["correct horse ", "Correct horse", "", "correct"])
    def test_wrong_password(self, stored: str, wrong: str) -> None:
        """Any other password does not."""
        assert not verify_password(wrong, stored)

    def test_unicode_normalised(self) -> None:
        """A composed and a decomposed 'й' are the same password."""
        h = hash_password("\u0439")  # й composed
        assert verify_password("\u0438\u0306", h)  # и + combining breve

    @pytest.mark.parametrize(
        ("password", "stored", "expected"),
        [
            ("demo", "plain:demo", True),
            ("demo", "plain:Demo", False),
            ("", "plain:", False),
            ("x", "plain:", False),
            ("пароль", "plain:пароль", True),
            ("a:b", "plain:a:b", True),
        ],
    )
    def test_plain(self, password: str, stored: str, expected: bool) -> None:
        """A plain: entry is compared as text."""
        assert verify_password(password, stored) is expected

    @pytest.mark.parametrize(
        "stored",
        [
            "",
            "hunter2",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$scrypt$ln=14,r=8,p=1$$",
            "$scrypt$ln=14,r=8,p=1$!!!!$AAAA",
            "$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$scrypt$ln=20,r=64,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
    )
    def test_unreadable_never_matches(self, stored: str) -> None:
        """A hash that cannot be read, or asks for too much memory, never matches."""
        assert not is_readable_hash(stored)
        assert not verify_password("hunter2", stored)
        assert not verify_password("", stored)


class TestIsReadableHash:
    @pytest.mark.parametrize(
        ("stored", "expected"),
        [
            ("plain:x", True),
            ("plain:", False),
            (DUMMY_HASH, True),
            ("$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, True),
            ("$scrypt$ln=14,r=8$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, False),
            ("$scrypt$ln=14,r=8,p=1$AAAA$" + "A" * 43, False),
            (" $scrypt$ln=14,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, False),
        ],
    )
    def test_cases(self, stored: str, expected: bool) -> None:
        """Readable: plain: with a password, or scrypt with sane parameters and lengths."""
        assert is_readable_hash(stored) is expected

    def test_fresh_hash_readable(self, stored: str) -> None:
        """What hash_password makes is readable."""
        assert is_readable_hash(stored)


@settings(max_examples=25, deadline=None)
@given(password=st.text(min_size=1, max_size=40), other=st.text(max_size=40))
def test_roundtrip_cheap_parameters(password: str, other: str) -> None:
    """With cheap parameters, any password verifies and (almost) any other does not."""
    salt = b"0123456789abcdef"
    digest = passwords._scrypt(passwords._normalize(password), salt=salt, ln=4, r=8, p=1, dklen=32)
    stored = f"$scrypt$ln=4,r=8,p=1${passwords._b64encode(salt)}${passwords._b64encode(digest)}"
    assert verify_password(password, stored)
    if passwords._normalize(other) != passwords._normalize(password):
        assert not verify_password(other, stored)


class CountingVerify:
    """Stands in for verify_password and counts the slow checks."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, password: str, stored: str) -> bool:
        self.calls += 1
        return stored == f"plain:{password}"


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingVerify:
    """verify_password replaced by a counter, as the cache sees it."""
    counter = CountingVerify()
    monkeypatch.setattr(passwords, "verify_password", counter)
    return counter


class TestVerifiedCache:
    def test_second_check_skips_slow_verify(self, counting: CountingVerify) -> None:
        """After one success, the same login and password do not run the slow check."""
        cache = VerifiedCache()
        assert cache.verify("alex", "pw", "plain:pw")
        assert cache.verify("alex", "pw", "plain:pw")
        assert counting.calls == 1

    def test_wrong_password_not_cached(self, counting: CountingVerify) -> None:
        """A wrong password always fails, runs the slow check, and is not remembered."""
        cache = VerifiedCache()
        assert cache.verify("alex", "pw", "plain:pw")
        assert not cache.verify("alex", "bad", "plain:pw")
        assert not cache.verify("alex", "bad", "plain:pw")
        assert counting.calls == 3
        assert cache.verify("alex", "pw", "plain:pw")
        assert counting.calls == 3

    def test_hash_change_drops_entry(self, counting: CountingVerify) -> None:
        """A new stored hash for the login forgets the old password."""
        cache = VerifiedCache()
        assert cache.verify("alex", "old", "plain:old")
        assert not cache.verify("alex", "old", "plain:new")
        assert len(cache) == 0
        assert cache.verify("alex", "new", "plain:new")

    def test_logins_kept_apart(self, counting: CountingVerify) -> None:
        """An entry of one login does not let the same password in for another."""
        cache = VerifiedCache()
        assert cache.verify("alex", "pw", "plain:pw")
        assert not cache.check("bob", "pw", "plain:pw")

    def test_lru_bound(self, counting: CountingVerify) -> None:
        """Beyond max_entries the least recently used entry goes."""
        cache = VerifiedCache(max_entries=2)
        cache.verify("a", "1", "plain:1")
        cache.verify("b", "2", "plain:2")
        assert cache.check("a", "1", "plain:1")  # a is now the most recent
        cache.verify("c", "3", "plain:3")
        assert len(cache) == 2
        assert cache.check("a", "1", "plain:1")
        assert not cache.check("b", "2", "plain:2")
        assert cache.check("c", "3", "plain:3")

    def test_forget_and_clear(self, counting: CountingVerify) -> None:
        """forget drops one key, clear drops all."""
        cache = VerifiedCache()
        cache.verify("a", "1", "plain:1")
        cache.verify("b", "2", "plain:2")
        cache.forget("a")
        assert not cache.check("a", "1", "plain:1")
        cache.clear()
        assert len(cache) == 0

    def test_split_api(self) -> None:
        """check misses until remember records a success."""
        cache = VerifiedCache()
        assert not cache.check("a", "pw", "plain:pw")
        cache.remember("a", "pw", "plain:pw")
        assert cache.check("a", "pw", "plain:pw")
        assert not cache.check("a", "pW", "plain:pw")

    def test_password_not_kept(self) -> None:
        """Nothing the cache holds contains the password."""
        cache = VerifiedCache()
        cache.remember("a", "s3cr3t-value", "plain:x")
        held = repr([(k, e.stored, e.mac) for k, e in cache._entries.items()])
        assert "s3cr3t-value" not in held
        assert b"s3cr3t-value" not in b"".join(e.mac for e in cache._entries.values())

    def test_works_with_scrypt(self, stored: str) -> None:
        """The cache in front of a real scrypt hash."""
        cache = VerifiedCache()
        assert cache.verify("alex", "correct horse", stored)
        assert cache.check("alex", "correct horse", stored)
        assert not cache.verify("alex", "wrong", stored)

    def test_bad_size(self) -> None:
        """A cache must hold at least one entry."""
        with pytest.raises(ValueError, match="max_entries"):
            VerifiedCache(max_entries=0)
