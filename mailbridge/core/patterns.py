"""Operator regular expressions matched in linear time (RE2).

``deny_text`` patterns and the ``*`` wildcards of ``allowed_senders`` are
written by the operator but searched in text a client sends. Python's ``re``
backtracks: ``(a+)+$`` against 40 ``a`` and a ``b`` runs for hours while
holding the GIL, so no timeout, thread or signal can stop it. RE2 (Google's
engine, ``google-re2`` bindings) runs in time linear in the text and never
backtracks; what it cannot do in linear time (back-references, look-around,
possessive and atomic groups, ``(?x)``) it refuses to compile, and
``check-config`` names such a pattern instead of running it. The choice and
its measurements are in ``docs/configuration.md`` (``deny_text``) and
``bench/bench_patterns.py``.

A pattern must be valid for Python's ``re`` (the documented syntax) *and* for
RE2. So that Cyrillic text behaves as under ``re``, the Unicode classes are
rewritten before RE2 sees them: ``\\w`` → ``[\\p{L}\\p{N}_]``, ``\\d`` →
``\\p{Nd}``, ``\\s`` → Unicode whitespace, their negations likewise, ``\\Z`` →
``\\z``. RE2's ``\\b`` only knows ASCII word characters, which would let
``\\bказино\\b`` match nothing: ``\\b`` and ``\\B`` are refused with a hint.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Protocol

import re2

__all__ = ["LinearPattern", "PatternError", "compile_linear", "wildcard_match"]

_WORD = r"\p{L}\p{N}_"
_SPACE = r"\t-\r\x{1c}-\x{1f}\x{85}\p{Z}"
# Escapes rewritten outside a character class, and inside one.
_OUTSIDE = {
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "d": r"\p{Nd}",
    "D": r"\P{Nd}",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "Z": r"\z",
}
_INSIDE = {"w": _WORD, "d": r"\p{Nd}", "D": r"\P{Nd}", "s": _SPACE}
_REFUSED = {
    "b": r"\b is an ASCII-only word boundary in the linear-time engine; "
    r"write (?:^|[^\p{L}\p{N}_]) and (?:[^\p{L}\p{N}_]|$) around the word instead",
    "B": r"\B is ASCII-only in the linear-time engine",
}
_MAX_MEM = 8 << 20  # bytes of automaton per pattern; RE2 refuses larger ones


class PatternError(ValueError):
    """A pattern that cannot be run in linear time (or is not a regular expression)."""


class LinearPattern(Protocol):
    """What the callers use of a compiled pattern."""

    def search(self, text: str) -> object: ...


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEM
    return options


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    in_class = False
    class_start = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            table = _INSIDE if in_class else _OUTSIDE
            if nxt in table:
                out.append(table[nxt])
            elif nxt in _REFUSED and not in_class:
                raise PatternError(_REFUSED[nxt])
            elif in_class and nxt in "WS":
                raise PatternError(f"\\{nxt} inside [...] is not supported; use [^...] instead")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            # ']' right after '[' or '[^' is a literal in both engines.
            if ch == "]" and i > class_start:
                in_class = False
            elif ch == "[" and pattern.startswith("[:", i):
                raise PatternError("POSIX classes like [:alpha:] differ between engines")
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            class_start = i + 1
            if pattern.startswith("[^", i):
                class_start += 1
                out.append("[^")
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_linear(pattern: str) -> LinearPattern:
    """``pattern`` (Python ``re`` syntax) compiled for RE2, else :class:`PatternError`."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PatternError(f"bad regular expression: {exc}") from None
    translated = _translate(pattern)
    try:
        compiled: LinearPattern = re2.compile(translated, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"cannot be matched in linear time (back-references, look-around and "
            f"the like are not run): {reason}"
        ) from None
    return compiled


@functools.lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> LinearPattern:
    regex = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    compiled: LinearPattern = re2.compile(f"(?s)\\A(?:{regex})\\z", _options())
    return compiled


def wildcard_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` whole, ``*`` standing for any run of characters."""
    return _wildcard(pattern).search(text) is not None


def any_match(patterns: Iterable[LinearPattern], texts: Iterable[str]) -> bool:
    """Whether one of ``patterns`` is found in one of ``texts``."""
    materialised = list(texts)
    return any(p.search(t) is not None for p in patterns for t in materialised)
