"""Time ``read_mail`` against a bare ``email`` (compat32) parse, per mail of the corpus.

Usage: ``python bench/bench_mail.py [FILE.eml ...]`` (default: every mail of
``tests/data/mails``). Prints the best of several runs in microseconds; the
baseline is ``email.message_from_bytes`` plus decoding every leaf payload,
which is what the stdlib needs to get at the text.
"""

from __future__ import annotations

import email
import sys
import timeit
from pathlib import Path

from mailbridge.errors import RequestError
from mailbridge.mail import read_mail

__all__ = ["bare_parse", "best_us", "main"]

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "mails"


def bare_parse(raw: bytes) -> None:
    """Parse with compat32 and decode every leaf payload, as the stdlib would."""
    for part in email.message_from_bytes(raw).walk():
        if not part.is_multipart():
            part.get_payload(decode=True)


def _read(raw: bytes) -> None:
    try:
        read_mail(raw)
    except RequestError:
        pass


def best_us(function: object, raw: bytes, *, budget_s: float = 0.2) -> float:
    """Best time of one call, in microseconds, over about ``budget_s`` of runs."""
    timer = timeit.Timer(lambda: function(raw))  # type: ignore[operator]
    number, elapsed = timer.autorange()
    repeat = max(3, min(50, int(budget_s / max(elapsed, 1e-9))))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main(argv: list[str]) -> None:
    files = [Path(arg) for arg in argv] or sorted(CORPUS.glob("*.eml"))
    print(f"{'mail':45} {'bytes':>8} {'read_mail µs':>13} {'compat32 µs':>12} {'ratio':>6}")
    for path in files:
        raw = path.read_bytes()
        ours = best_us(_read, raw)
        try:
            bare = best_us(bare_parse, raw)
        except RecursionError:
            bare = float("nan")
        print(f"{path.name:45} {len(raw):8} {ours:13.1f} {bare:12.1f} {ours / bare:6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
