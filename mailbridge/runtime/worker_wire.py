"""What an SMTP worker and its parent say to each other: the one format both sides share.

A worker gets its :class:`WorkerSpec` (bound addresses, storage URL, the two
descriptors) as JSON in the :data:`WORKER_ENV` environment variable, never on
the command line (a PostgreSQL URL may hold a password). Back it sends Unix
datagrams on the wake socket: a wake (:data:`DUE` and/or :data:`REPLY`, the
earliest due time after :data:`AT`), :data:`READY` or :data:`RELOADED` with its
index, and :data:`METRICS` snapshots. :class:`WakeSender` writes them, at most
one wake per turn of the worker's event loop; the parent
(:mod:`mailbridge.runtime.supervisor`) reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "AT",
    "DATAGRAM_MAX",
    "DUE",
    "METRICS",
    "METRICS_EVERY_S",
    "READY",
    "RELOADED",
    "REPLY",
    "WORKER_ENV",
    "WakeSender",
    "WorkerSpec",
    "due_time",
    "metrics_datagram",
]

#: The environment variable carrying a worker's :class:`WorkerSpec` (JSON).
WORKER_ENV = "MAILBRIDGE_WORKER"

#: A wake datagram's kinds: SMS rows committed (wake the dispatcher), a reply queued (the mailer).
DUE = b"d"
REPLY = b"r"
#: ``b"ready <index>"``: the worker listens; ``b"reloaded <index>"``: it took a SIGHUP's config.
READY = b"ready "
RELOADED = b"reloaded "
#: A worker's metrics snapshot: ``b"metrics <index> <json>"`` (mailbridge.http.metrics).
METRICS = b"metrics "
#: How often a worker sends its metrics snapshot (with ``[http]`` on).
METRICS_EVERY_S = 1.0
#: The largest datagram the parent reads (a metrics snapshot is a few KB).
DATAGRAM_MAX = 1 << 16
#: Separates the kinds of a wake datagram from the earliest due time (epoch seconds).
AT = b"@"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """What a worker gets from its parent."""

    index: int
    listen: tuple[str, ...]
    storage_url: str
    wake_fd: int
    life_fd: int

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, text: str) -> WorkerSpec:
        raw = json.loads(text)
        return cls(
            index=int(raw["index"]),
            listen=tuple(str(a) for a in raw["listen"]),
            storage_url=str(raw["storage_url"]),
            wake_fd=int(raw["wake_fd"]),
            life_fd=int(raw["life_fd"]),
        )


def due_time(stamp: bytes) -> datetime | None:
    """The due time a wake datagram carries; None (wake regardless) when absent or unreadable."""
    try:
        return datetime.fromtimestamp(float(stamp), UTC) if stamp else None
    except (ValueError, OverflowError, OSError):
        return None


def metrics_datagram(index: int, payload: bytes) -> bytes:
    """The datagram carrying worker ``index``'s metrics snapshot ``payload``."""
    return METRICS + f"{index} ".encode() + payload


class WakeSender:
    """Tells the parent about commits: one datagram per turn of the event loop at most."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._pending = bytearray()
        self._scheduled = False
        #: The earliest due time of this turn's rows; None: unknown (wake regardless).
        self._due: float | None = None
        self._due_unknown = False

    def request(self, due: datetime | None = None) -> None:
        """SMS rows (due at ``due``) were committed: wake the dispatcher."""
        if due is None:
            self._due_unknown = True
        elif self._due is None or due.timestamp() < self._due:
            self._due = due.timestamp()
        self._mark(DUE)

    def reply(self) -> None:
        """A reply mail was queued: wake the mailer."""
        self._mark(REPLY)

    def _mark(self, kind: bytes) -> None:
        if kind not in self._pending:
            self._pending += kind
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        data, self._pending = bytes(self._pending), bytearray()
        if DUE in data and self._due is not None and not self._due_unknown:
            data += AT + repr(self._due).encode("ascii")  # e.g. b"d@1764000000.25"
        self._due, self._due_unknown = None, False
        self.send(data)

    def send(self, data: bytes) -> None:
        """Send one datagram now; a full buffer or a gone parent only costs latency."""
        with contextlib.suppress(OSError):
            self._sock.send(data)
