"""Who holds the claimed rows: putting back those of dispatchers that are gone.

Each dispatcher claims rows under its owner string
(:func:`mailbridge.core.leases.make_owner`). A dispatcher killed with
``kill -9`` leaves its rows ``sending`` until their lease runs out
(``[delivery] lease_s``); this module puts them back at once instead.
:func:`release_dead` runs at start: the owners that
:func:`~mailbridge.core.leases.releasable` names gone (a process of this host
that no longer runs, this process's pid from an earlier start, or, with a
single owner such as SQLite, any other owner). :func:`heartbeats` runs while
a dispatcher of a storage shared by several instances (PostgreSQL) lives:
it writes this owner's heartbeat every :data:`HEARTBEAT_S` and releases the
owners not heard of for :data:`STALE_S`. A live dispatcher is never released.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from mailbridge.core.leases import releasable
from mailbridge.log import get_logger
from mailbridge.storage.base import DeliveryStore

__all__ = ["HEARTBEAT_S", "STALE_S", "heartbeats", "pid_alive", "release_dead"]

#: How often a dispatcher of a shared storage (PostgreSQL) writes its heartbeat, and how
#: old a heartbeat may get before its owner counts as gone and its rows are released.
HEARTBEAT_S = 2.0
STALE_S = 15.0

_log = get_logger("mailbridge.dispatcher")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (signal 0 tells, sending nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, under another user
    return True


async def release_dead(
    storage: DeliveryStore,
    *,
    me: str,
    single_owner: bool,
    alive: Callable[[int], bool] = pid_alive,
) -> list[str]:
    """Put back at once the rows that dispatchers which are gone left ``sending``.

    ``me``: this dispatcher's owner string; ``single_owner``: it is the only
    dispatcher of its storage. Returns the owners released (a storage error is
    logged: the leases remain).
    """
    try:
        owners = await storage.claim_owners()
        gone = [o for o in owners if releasable(o, me=me, alive=alive, single_owner=single_owner)]
        for owner in gone:
            await storage.release_claims(owner)
            _log.info("released rows of a dispatcher that is gone", owner=owner)
    except Exception as exc:
        _log.warning("could not release rows at start", error=type(exc).__name__)
        return []
    return gone


async def heartbeats(storage: DeliveryStore, me: str) -> None:
    """Say ``me`` lives, and release the stale, every :data:`HEARTBEAT_S` until cancelled.

    An owner not heard of for :data:`STALE_S` is gone (``kill -9``, a host
    lost): its rows are put back at once instead of waiting for their lease.
    A storage error is logged and the next round tries again.
    """
    while True:
        try:
            await storage.heartbeat(me)
            for owner in await storage.stale_owners(STALE_S):
                if owner != me:
                    await storage.release_claims(owner)
                    _log.info("released rows of a dispatcher that is gone", owner=owner)
        except Exception as exc:
            _log.warning("heartbeat failed", error=type(exc).__name__)
        await asyncio.sleep(HEARTBEAT_S)
