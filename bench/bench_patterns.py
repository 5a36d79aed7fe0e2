"""deny_text engines: Python re, RE2 (what mailbridge runs) and a worker process.

    .venv/bin/python bench/bench_patterns.py

Prints, for the catastrophic pattern ``(a+)+$`` against n ``a`` and a ``b``,
the time of Python's ``re`` (doubling with each n: exponential), of RE2 on
the same and on a 100 000-character text (linear), the time RE2 and ``re``
take on a plain ``(?i)casino`` search of a 1000-character SMS (the everyday
case, as a ratio), and the round trip of one search handed to a worker
process (what a time-bounded worker would add to every mail).
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable

from mailbridge.core.patterns import compile_linear


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def _search(args: tuple[str, str]) -> bool:
    return re.search(args[0], args[1]) is not None


def main() -> None:
    evil = "(a+)+$"
    py = re.compile(evil)
    linear = compile_linear(evil)
    print("n   python re (s)   RE2 (s)")
    for n in (16, 18, 20, 22):
        text = "a" * n + "b"
        t_py = timed(lambda t=text: py.search(t))
        t_re2 = timed(lambda t=text: linear.search(t), 100)
        print(f"{n:<3} {t_py:<15.4f} {t_re2:.7f}")
    big = "a" * 100_000 + "b"
    print(f"RE2, 100 000 characters: {timed(lambda: linear.search(big), 10) * 1e3:.3f} ms")

    sms = ("Сервер упал, проверьте базу данных " * 30)[:1000]
    plain_py = re.compile("(?i)casino")
    plain_re2 = compile_linear("(?i)casino")
    t_py = timed(lambda: plain_py.search(sms), 2000)
    t_re2 = timed(lambda: plain_re2.search(sms), 2000)
    print(
        f"(?i)casino in a 1000-character SMS: re {t_py * 1e6:.1f} µs, "
        f"RE2 {t_re2 * 1e6:.1f} µs, ratio RE2/re {t_re2 / t_py:.2f}"
    )

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_search, (("casino", sms),))
        t_worker = timed(lambda: pool.apply(_search, (("(?i)casino", sms),)), 200)
    print(
        f"worker process round trip per search: {t_worker * 1e6:.0f} µs, "
        f"ratio to RE2 {t_worker / t_re2:.0f}"
    )


if __name__ == "__main__":
    main()
