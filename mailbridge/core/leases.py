"""Who holds a claimed SMS row, and when its claims may be taken back at once.

A dispatcher claims rows under a lease written as its *owner*:
``<host>:<pid>:<token>``, the token random per start, so a restarted process
that got the same pid (a container, systemd with a PID namespace) is still
told apart from the one that died. After ``kill -9`` the rows of the dead
owner stay ``sending`` until their lease ends (``[delivery] lease_s``, 120 s
by default); :func:`releasable` says which owners' rows a dispatcher that
is starting may put back at once instead:

* an owner on this host whose process is gone, or that has this process's
  pid but another token (it died and the pid came round again);
* with a single-owner storage (SQLite: one dispatcher per database file),
  also an owner of another host name (the same file, a container that got
  a new name).

Never an owner whose process lives: those rows are still on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Owner", "make_owner", "parse_owner", "releasable"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Owner:
    host: str
    pid: int | None
    token: str


def make_owner(host: str, pid: int, token: str) -> str:
    """The owner string of a dispatcher."""
    return f"{host}:{pid}:{token}"


def parse_owner(owner: str) -> Owner:
    """``host:pid:token`` (or the older ``host:pid``) read back; an unreadable pid is None."""
    host, pid_text, token = owner, "", ""
    parts = owner.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        host, pid_text, token = parts
    elif len(parts) >= 2 and parts[-1].isdigit():
        host, pid_text = owner.rsplit(":", 1)
    return Owner(host=host, pid=int(pid_text) if pid_text else None, token=token)


def releasable(owner: str, *, me: str, alive: Callable[[int], bool], single_owner: bool) -> bool:
    """Whether the rows ``owner`` claimed may be released by ``me`` as it starts."""
    if owner == me:
        return False
    them, us = parse_owner(owner), parse_owner(me)
    if them.host != us.host:
        return single_owner
    if them.pid is None:
        return single_owner
    if them.pid == us.pid:
        return True  # our pid, another start: the process that had it is gone
    return not alive(them.pid)
