"""systemd's ``sd_notify`` protocol: one datagram to ``$NOTIFY_SOCKET``.

``READY=1`` when the listeners are open, ``RELOADING=1`` … ``READY=1`` around a
SIGHUP reload, ``STOPPING=1`` when a drain begins. Without ``NOTIFY_SOCKET``
(not started by systemd with ``Type=notify``) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = ["notify", "notify_socket_address"]


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
