"""Which owners' claimed rows a starting dispatcher may release at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailbridge.core.leases import make_owner, parse_owner, releasable

ME = make_owner("gw1", 100, "aaaa")


def alive_only(*pids: int) -> Callable[[int], bool]:
    return lambda pid: pid in pids


@pytest.mark.parametrize(
    ("owner", "alive", "single", "expected"),
    [
        (make_owner("gw1", 55, "bbbb"), (), False, True),  # same host, process gone
        (make_owner("gw1", 55, "bbbb"), (55,), False, False),  # same host, alive
        (make_owner("gw1", 100, "bbbb"), (100,), False, True),  # our pid, an earlier start
        (ME, (100,), True, False),  # our own claims
        (make_owner("gw2", 55, "bbbb"), (), False, False),  # another host: its lease
        (make_owner("gw2", 55, "bbbb"), (), True, True),  # SQLite: one owner per file
        ("gw1:55", (), False, True),  # the older host:pid form
        ("gw1:55", (55,), False, False),
        ("strange", (), False, False),
        ("strange", (), True, True),
    ],
)
def test_releasable(owner: str, alive: tuple[int, ...], single: bool, expected: bool) -> None:
    """Dead or earlier owners are released; a live one never is."""
    assert releasable(owner, me=ME, alive=alive_only(*alive), single_owner=single) is expected


def test_parse_round_trip() -> None:
    """An owner string reads back as it was made, host names with colons included."""
    owner = parse_owner(make_owner("fe80::1", 42, "t0k"))
    assert (owner.host, owner.pid, owner.token) == ("fe80::1", 42, "t0k")
