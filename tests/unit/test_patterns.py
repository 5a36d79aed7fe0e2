"""Operator patterns run in linear time; what RE2 cannot run is refused by name."""

from __future__ import annotations

import pytest

from mailbridge.core.patterns import PatternError, compile_linear, wildcard_match


class TestCompileLinear:
    def test_catastrophic_pattern_is_linear(self) -> None:
        """(a+)+$ against 5000 a's and a b finishes (Python re would run for ages) and misses."""
        pattern = compile_linear("(a+)+$")
        assert pattern.search("a" * 5000 + "b") is None
        assert pattern.search("xx aaaa") is not None

    @pytest.mark.parametrize(
        ("pattern", "text", "found"),
        [
            (r"(?i)casino", "Play CASINO now", True),
            (r"(?i)казино", "КАЗИНО рядом", True),
            (r"\w+ино", "казино", True),
            (r"^\w+$", "привет", True),
            (r"\d{3}", "٣٤٥", True),
            (r"\s", "a\u00a0b", True),
            (r"\S", " \t\u2003", False),
            (r"\W", "слово", False),
            (r"[\w-]+!", "ура-ура!", True),
            (r"end\Z", "the end", True),
            (r"end\Z", "end of it", False),
        ],
    )
    def test_python_semantics_kept(self, pattern: str, text: str, found: bool) -> None:
        """Unicode classes behave as under Python's re, Cyrillic included."""
        assert (compile_linear(pattern).search(text) is not None) is found

    @pytest.mark.parametrize(
        ("pattern", "reason"),
        [
            (r"(\w)\1", "linear time"),
            (r"(?<=a)b", "linear time"),
            (r"a(?=b)", "linear time"),
            (r"\bcasino\b", "ASCII-only"),
            (r"(unclosed", "bad regular expression"),
            (r"[\W]", "inside [...]"),
        ],
    )
    def test_refused(self, pattern: str, reason: str) -> None:
        """A pattern RE2 cannot run (or that would change meaning) is refused with a reason."""
        with pytest.raises(PatternError) as info:
            compile_linear(pattern)
        assert reason in str(info.value)


class TestWildcard:
    def test_many_stars_are_linear(self) -> None:
        """A pattern of many * against a long address is answered at once."""
        pattern = "*a" * 40 + "*@example.com"
        assert not wildcard_match(pattern, "a" * 300 + "@example.org")

    @pytest.mark.parametrize(
        ("pattern", "text", "found"),
        [
            ("*@example.com", "ops@example.com", True),
            ("*@example.com", "ops@example.com.evil", False),
            ("a.b@x.y", "a.b@x.y", True),
            ("a.b@x.y", "aXb@x.y", False),
            ("z*@*", "zabbix@host", True),
        ],
    )
    def test_meaning(self, pattern: str, text: str, found: bool) -> None:
        """* is any run of characters, every other character is literal."""
        assert wildcard_match(pattern, text) is found
