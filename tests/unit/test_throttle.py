"""The per-IP budget of refusal log lines (mailbridge.core.throttle)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.throttle import LineThrottle, Verdict


def test_budget_per_window_then_suppressed_count_carried() -> None:
    t = LineThrottle(per_window=3, window_s=60)
    assert [t.check("10.0.0.1", 0.0).log for _ in range(5)] == [True, True, True, False, False]
    assert t.check("10.0.0.1", 59.9) == Verdict(log=False)
    # the next window's first line says how many were left out
    assert t.check("10.0.0.1", 60.0) == Verdict(log=True, suppressed=3)
    assert t.check("10.0.0.1", 61.0) == Verdict(log=True)


def test_ips_have_their_own_budget() -> None:
    t = LineThrottle(per_window=1, window_s=60)
    assert t.check("10.0.0.1", 0).log
    assert not t.check("10.0.0.1", 1).log
    assert t.check("10.0.0.2", 1).log


def test_table_is_bounded() -> None:
    t = LineThrottle(per_window=1, window_s=60, max_ips=100)
    for i in range(1000):
        t.check(f"10.0.{i // 256}.{i % 256}", float(i) / 1000)
    assert len(t) == 100


@pytest.mark.parametrize(("per", "window", "ips"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_arguments(per: int, window: float, ips: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LineThrottle(per_window=per, window_s=window, max_ips=ips)


@given(st.lists(st.floats(min_value=0, max_value=600), max_size=300))
def test_never_more_than_budget_per_window(times: list[float]) -> None:
    """Whatever the arrival times, any 60 s span holds at most two windows' budgets, and every
    line is either written or counted in a later line's ``suppressed``."""
    t = LineThrottle(per_window=5, window_s=60)
    verdicts = [(now, t.check("ip", now)) for now in sorted(times)]
    written = [now for now, v in verdicts if v.log]
    for start in written:
        assert sum(1 for w in written if start <= w < start + 60) <= 2 * 5
    dropped = sum(1 for _, v in verdicts if not v.log)
    reported = sum(v.suppressed for _, v in verdicts)
    assert reported <= dropped
    pending = t.check("ip", 10_000.0).suppressed  # a late line reports what is left
    assert reported + pending == dropped
