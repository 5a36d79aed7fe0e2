"""The daemon's signals: SIGTERM and SIGINT ask it to stop, SIGHUP to read the config again.

One :class:`DaemonSignals` per serving process (the single gateway process,
the supervisor, each SMTP worker): it installs the three handlers, runs each
reload as a task of its own, and on the way out removes the handlers and
waits for a reload under way (:meth:`DaemonSignals.release`), after
``STOPPING=1`` and the ``stopping`` line where the process tells systemd
(:meth:`DaemonSignals.stopping`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from structlog.typing import FilteringBoundLogger

from mailbridge.runtime.sdnotify import notify

__all__ = ["DaemonSignals"]

_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class DaemonSignals:
    """SIGTERM/SIGINT set :attr:`stop`; SIGHUP runs ``reload`` (one task per signal)."""

    def __init__(self, reload: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._reload = reload
        self._reloads: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()

    def install(self) -> None:
        self._loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        self._loop.add_signal_handler(signal.SIGINT, self.stop.set)
        self._loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _on_hup(self) -> None:
        task = self._loop.create_task(self._reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def release(self) -> None:
        """Remove the handlers, then wait for the reloads under way."""
        for sig in _HANDLED:
            self._loop.remove_signal_handler(sig)
        for task in list(self._reloads):
            await task

    async def stopping(self, log: FilteringBoundLogger) -> None:
        """``STOPPING=1`` to systemd, the ``stopping`` line on ``log``, then :meth:`release`."""
        notify("STOPPING=1")
        log.info("stopping")
        await self.release()
