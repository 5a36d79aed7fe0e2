"""systemd's ``sd_notify`` protocol: one datagram to ``$NOTIFY_SOCKET``.

``READY=1`` when the listeners are open, ``RELOADING=1`` … ``READY=1`` around a
SIGHUP reload, ``STOPPING=1`` when a drain begins. Without ``NOTIFY_SOCKET``
(not started by systemd with ``Type=notify``) every call does nothing.

:class:`Heartbeat` is the watchdog: a task of the event loop that sends
``WATCHDOG=1`` every half of ``WatchdogSec`` (``$WATCHDOG_USEC``), so a loop
that stops turning (a blocking call, a deadlock) stops the pings and systemd
restarts the service. Without a watchdog it still beats (every
:data:`BEAT_S`), and ``/healthz`` reports how late the last beat is.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

from mailbridge.runtime.tasks import cancel_and_wait

__all__ = ["BEAT_S", "Heartbeat", "notify", "notify_socket_address", "watchdog_interval_s"]

#: How often the heartbeat beats when systemd asks for no watchdog.
BEAT_S = 5.0


def notify_socket_address(env: Mapping[str, str]) -> str | bytes | None:
    """The address of the notify socket named by ``env``; ``@`` is the abstract namespace."""
    path = env.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return None
    if path[0] == "@":
        return b"\0" + path[1:].encode()
    return path


def notify(*states: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``states`` (``"READY=1"``, ``"STATUS=…"``) to systemd; False when not under it."""
    address = notify_socket_address(os.environ if env is None else env)
    if address is None:
        return False
    lines = list(states)
    if "RELOADING=1" in lines:
        # systemd ≥ 253 (Type=notify-reload) wants the monotonic time with RELOADING=1
        lines.append(f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
    payload = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError:
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str]) -> float | None:
    """``WatchdogSec`` in seconds when systemd watches this process, else None."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


class Heartbeat:
    """``WATCHDOG=1`` from the event loop every half watchdog interval; see the module."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._env = dict(env)
        watchdog = watchdog_interval_s(env)
        self.watchdog = watchdog is not None
        self.interval_s = watchdog / 2 if watchdog is not None else BEAT_S
        self.last = time.monotonic()
        self.beats = 0
        self._task: asyncio.Task[None] | None = None

    def late_s(self) -> float:
        """Seconds the next beat is overdue (0 while the loop keeps time)."""
        return max(0.0, time.monotonic() - self.last - self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._beat()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def _beat(self) -> None:
        self.last = time.monotonic()
        self.beats += 1
        if self.watchdog:
            notify("WATCHDOG=1", env=self._env)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._beat()
