"""Stopping a background task of the runtime: cancel it and wait until it has ended.

The retention runner, the sd_notify heartbeat and a worker's metrics
forwarder each run one asyncio task; :func:`cancel_and_wait` ends it, its
:class:`asyncio.CancelledError` swallowed (any other error it ends with is
raised).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to stop) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
