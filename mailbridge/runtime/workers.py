"""``[smtp] workers = N``: SMTP intake in N processes, delivery in one.

With ``workers > 1``, ``mailbridge serve`` is a small supervisor (the parent):

* it binds every ``[smtp] listen`` address once with ``SO_REUSEPORT`` and
  never listens on it: the port stays reserved (a port 0 gets its number
  here) while workers come and go;
* it opens the storage (creating or migrating the schema) and runs the
  dispatcher and the reply mailer: delivery happens in this process only;
* it starts N workers, each ``python -m mailbridge.cli serve --config X
  --worker i`` (a plain child process: nothing pickled, its own command line
  in ``ps``, stdout/stderr shared with the parent). Each worker binds the same
  addresses with ``SO_REUSEPORT`` (the kernel spreads connections over them),
  opens its own storage connection and runs the SMTP handler; SQLite's write
  lock serialises the workers' commits, and a commit that cannot be made is a
  ``451 4.3.0`` as in one process;
* after a commit that stored SMS rows (or queued a reply) a worker sends one
  byte on a Unix datagram socket the parent reads, which wakes the dispatcher
  (or the mailer): at most one datagram per turn of the worker's event loop.
  A datagram that cannot be sent (the parent is gone or not reading) only
  costs latency: the dispatcher looks at the queue anyway after its capped
  idle sleep;
* with ``[http]`` on, each worker sends a snapshot of its metrics (cumulative
  counters, its open sessions, its last refusals) on the same socket once a
  second (:data:`METRICS_EVERY_S`); the parent's ``/metrics`` and status page
  add them to its own figures (``Metrics.absorb``);
* ``READY=1`` once every worker listens. SIGHUP: the parent reads the config;
  if it loads, the parent applies it and forwards SIGHUP, and ``READY=1``
  follows once every worker has reloaded. SIGTERM/SIGINT: forwarded; the
  parent stops its dispatcher and mailer while the workers drain, then exits 0.
  A worker that exits on its own is logged and started again (with a backoff
  when it keeps dying). A worker whose parent is gone (``kill -9``) sees its
  lifeline pipe close and drains and exits by itself.

What a worker needs from its parent (the bound addresses, the storage URL
the parent uses, the two descriptors) travels in the ``MAILBRIDGE_WORKER``
environment variable, not on the command line (a PostgreSQL URL may hold a
password).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from mailbridge.core.config import load_config
from mailbridge.errors import ConfigError, StorageError
from mailbridge.http.metrics import Metrics
from mailbridge.log import configure_logging, get_logger
from mailbridge.runtime.app import DRAIN_S, Gateway
from mailbridge.runtime.config_file import read_settings
from mailbridge.runtime.pidfile import remove_pid_file, write_pid_file
from mailbridge.runtime.sdnotify import notify
from mailbridge.settings import Settings, StorageSettings
from mailbridge.smtp.server import parse_listen

__all__ = [
    "READY_TIMEOUT_S",
    "WORKER_ENV",
    "WakeSender",
    "WorkerSpec",
    "reserve_addresses",
    "serve_worker",
    "supervise",
]

log = get_logger("mailbridge.workers")

#: The environment variable carrying a worker's :class:`WorkerSpec` (JSON).
WORKER_ENV = "MAILBRIDGE_WORKER"

#: Longest wait for a worker to listen (at start and after a restart).
READY_TIMEOUT_S = 30.0

#: Longest wait for the workers to confirm a reload before ``READY=1``.
_RELOAD_TIMEOUT_S = 10.0

#: Longest wait for the workers after SIGTERM; then they are killed.
_EXIT_TIMEOUT_S = DRAIN_S + 5.0

#: Restart backoff of a worker that keeps dying: first, doubling, at most.
_RESTART_FIRST_S = 0.2
_RESTART_MAX_S = 10.0
#: A worker that ran this long before it died is restarted without delay growth.
_STABLE_S = 10.0

_DUE = b"d"
_REPLY = b"r"
_READY = b"ready "
_RELOADED = b"reloaded "
#: A worker's metrics snapshot: ``b"metrics <index> <json>"`` (mailbridge.http.metrics).
_METRICS = b"metrics "
#: How often a worker sends its metrics snapshot (with ``[http]`` on).
METRICS_EVERY_S = 1.0
#: The largest datagram the parent reads (a metrics snapshot is a few KB).
_DATAGRAM_MAX = 1 << 16
#: Separates the kinds of a wake datagram from the earliest due time (epoch seconds).
_AT = b"@"


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


def _entry(family: int, host: str, port: int) -> str:
    return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"


def reserve_addresses(listen: Sequence[str]) -> tuple[list[socket.socket], list[str]]:
    """Bind (never listen on) every address of ``listen`` with ``SO_REUSEPORT``.

    Returns the sockets (kept open: they hold the ports) and one concrete
    ``host:port`` per socket for the workers to bind. Raises OSError.
    """
    sockets: list[socket.socket] = []
    concrete: list[str] = []
    try:
        for item in listen:
            host, port = parse_listen(item)
            infos = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            seen: set[tuple[int, str]] = set()
            for family, kind, proto, _, addr in infos:
                if (family, str(addr[0])) in seen:
                    continue
                seen.add((family, str(addr[0])))
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                name = sock.getsockname()
                concrete.append(_entry(family, str(name[0]), int(name[1])))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets, concrete


# --- the worker side ----------------------------------------------------------------


def _due_time(stamp: bytes) -> datetime | None:
    """The due time a wake datagram carries; None (wake regardless) when absent or unreadable."""
    try:
        return datetime.fromtimestamp(float(stamp), UTC) if stamp else None
    except (ValueError, OverflowError, OSError):
        return None


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
        self._mark(_DUE)

    def reply(self) -> None:
        """A reply mail was queued: wake the mailer."""
        self._mark(_REPLY)

    def _mark(self, kind: bytes) -> None:
        if kind not in self._pending:
            self._pending += kind
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        data, self._pending = bytes(self._pending), bytearray()
        if _DUE in data and self._due is not None and not self._due_unknown:
            data += _AT + repr(self._due).encode("ascii")  # e.g. b"d@1764000000.25"
        self._due, self._due_unknown = None, False
        self.send(data)

    def send(self, data: bytes) -> None:
        """Send one datagram now; a full buffer or a gone parent only costs latency."""
        with contextlib.suppress(OSError):
            self._sock.send(data)


async def _forward_metrics(metrics: Metrics, wake: WakeSender, index: int) -> None:
    """Send this worker's metrics to the parent every :data:`METRICS_EVERY_S`."""
    head = _METRICS + f"{index} ".encode()
    pid = os.getpid()
    last = b""
    quiet = 0
    while True:
        payload = metrics.snapshot(pid)
        if payload != last or quiet >= 10:  # unchanged figures: every 10 s (a parent restart)
            wake.send(head + payload)
            last, quiet = payload, 0
        else:
            quiet += 1
        await asyncio.sleep(METRICS_EVERY_S)


async def serve_worker(settings_path: str | Path, index: int) -> int:
    """One SMTP worker: the listeners and the handler, no dispatcher; the exit status."""
    text = os.environ.get(WORKER_ENV, "")
    if not text:
        print("--worker is started by `mailbridge serve` with [smtp] workers > 1", flush=True)
        return 2
    spec = WorkerSpec.from_env(text)
    path = Path(settings_path)
    settings = read_settings(path)
    if settings is None:
        return 1
    # the parent's storage, even when the file names another one since it started
    settings = dataclasses.replace(settings, storage=StorageSettings(url=spec.storage_url))
    configure_logging(settings.logging)
    structlog.contextvars.bind_contextvars(worker=index)  # on every line of this process
    wake_sock = socket.socket(fileno=spec.wake_fd)
    wake_sock.setblocking(False)
    wake = WakeSender(wake_sock)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def on_life() -> None:
        try:
            data = os.read(spec.life_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            log.warning("worker_parent_gone")
            loop.remove_reader(spec.life_fd)
            stop.set()

    gateway = Gateway(
        settings,
        delivery=False,
        listen=spec.listen,
        reuse_port=True,
        owns_logging=True,
        on_request=wake.request,
        on_reply=wake.reply,
    )
    try:
        await gateway.start()
    except (OSError, ConfigError, StorageError, ssl.SSLError) as exc:
        log.error("worker_start_failed", error=str(exc))
        wake_sock.close()
        return 1

    async def reload() -> None:
        try:
            new = await asyncio.to_thread(load_config, path)
            new = dataclasses.replace(new, storage=settings.storage)
            gateway.reload(new)
        except (ConfigError, OSError, ssl.SSLError) as exc:
            log.error("reload_refused", error=str(exc))
        wake.send(_RELOADED + str(index).encode())

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    os.set_blocking(spec.life_fd, False)
    loop.add_reader(spec.life_fd, on_life)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    wake.send(_READY + str(index).encode())
    log.info("worker_started", pid=os.getpid())
    forward: asyncio.Task[None] | None = None
    if gateway.metrics is not None:
        forward = loop.create_task(_forward_metrics(gateway.metrics, wake, index))
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(spec.life_fd)
        for task in list(reloads):
            await task
        clean = await gateway.stop()
        if forward is not None:
            forward.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forward
            if gateway.metrics is not None:  # the last figures, drained sessions included
                wake.send(_METRICS + f"{index} ".encode() + gateway.metrics.snapshot(os.getpid()))
        wake_sock.close()
        log.info("worker_stopped", drained=clean)
    return 0


# --- the parent -----------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)
    backoff_s: float = _RESTART_FIRST_S

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


class _Supervisor:
    def __init__(self, path: Path, settings: Settings, gateway: Gateway, listen: list[str]) -> None:
        self.path = path
        self.settings = settings
        self.gateway = gateway
        self.listen = listen
        self.workers = [_Worker(index=i) for i in range(settings.smtp.workers)]
        self.stopping = False
        self.wake_r, self.wake_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.wake_r.setblocking(False)
        self.life_r, self.life_w = os.pipe()
        self.watchers: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.wake_r.fileno())
        self.wake_r.close()
        self.wake_w.close()
        for fd in (self.life_r, self.life_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def on_datagram(self) -> None:
        while True:
            try:
                data = self.wake_r.recv(_DATAGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        if data.startswith(_METRICS):
            index, _, payload = data[len(_METRICS) :].partition(b" ")
            if self.gateway.metrics is not None and index.isdigit():
                self.gateway.metrics.absorb(int(index), payload)
            return
        for prefix, attr in ((_READY, "ready"), (_RELOADED, "reloaded")):
            if data.startswith(prefix):
                with contextlib.suppress(ValueError, IndexError):
                    event: asyncio.Event = getattr(self.workers[int(data[len(prefix) :])], attr)
                    event.set()
                return
        kinds, _, stamp = data.partition(_AT)
        if _DUE in kinds and self.gateway.dispatcher is not None:
            self.gateway.dispatcher.wake(_due_time(stamp))
        if _REPLY in kinds and self.gateway.mailer is not None:
            self.gateway.mailer.wake()

    async def spawn(self, worker: _Worker) -> None:
        spec = WorkerSpec(
            index=worker.index,
            listen=tuple(self.listen),
            storage_url=self.settings.storage.url,
            wake_fd=self.wake_w.fileno(),
            life_fd=self.life_r,
        )
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)  # only the parent talks to systemd
        env[WORKER_ENV] = spec.to_env()
        worker.ready.clear()
        worker.started = time.monotonic()
        worker.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mailbridge.cli",
            "serve",
            "--config",
            str(self.path.absolute()),
            "--worker",
            str(worker.index),
            pass_fds=(spec.wake_fd, spec.life_fd),
            env=env,
            start_new_session=True,  # a terminal's ^C reaches the parent, which forwards it
        )

    async def wait_ready(self, worker: _Worker, timeout_s: float) -> bool:
        """True once ``worker`` listens; False when it exited or ``timeout_s`` ran out first."""
        proc = worker.proc
        if proc is None:
            return False
        ready = asyncio.ensure_future(worker.ready.wait())
        exited = asyncio.ensure_future(proc.wait())
        try:
            done = asyncio.FIRST_COMPLETED
            await asyncio.wait({ready, exited}, timeout=timeout_s, return_when=done)
        finally:
            ready.cancel()
            exited.cancel()
        return worker.ready.is_set() and proc.returncode is None

    def watch(self, worker: _Worker) -> None:
        task = asyncio.get_running_loop().create_task(self._watch(worker))
        self.watchers.add(task)
        task.add_done_callback(self.watchers.discard)

    async def _watch(self, worker: _Worker) -> None:
        while not self.stopping:
            proc = worker.proc
            if proc is None:
                return
            code = await proc.wait()
            if self.stopping:
                return
            if self.gateway.metrics is not None:
                self.gateway.metrics.worker_gone(worker.index)
            lived = time.monotonic() - worker.started
            if lived >= _STABLE_S:
                worker.backoff_s = _RESTART_FIRST_S
            delay = worker.backoff_s
            worker.backoff_s = min(worker.backoff_s * 2, _RESTART_MAX_S)
            log.error(
                "worker_exited", worker=worker.index, pid=proc.pid, returncode=code,
                restart_in_s=delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
            if self.stopping:
                return
            try:
                await self.spawn(worker)
            except OSError as exc:
                log.error("worker_restart_failed", worker=worker.index, error=str(exc))
                continue
            assert worker.proc is not None
            if await self.wait_ready(worker, READY_TIMEOUT_S):
                log.warning("worker_restarted", worker=worker.index, pid=worker.proc.pid)
            elif worker.alive:
                log.error("worker_not_ready", worker=worker.index, pid=worker.proc.pid)
                worker.signal(signal.SIGKILL)

    async def reload(self) -> None:
        notify("RELOADING=1")
        try:
            new = await asyncio.to_thread(load_config, self.path)
            if new.smtp.workers != self.settings.smtp.workers:
                log.warning("reload_workers_ignored", reason="the worker count changes on restart")
            self.gateway.reload(new)
        except (ConfigError, OSError, ssl.SSLError) as exc:
            log.error("reload_refused", error=str(exc))
            notify("READY=1")
            return
        self.settings = dataclasses.replace(new, storage=self.settings.storage)
        live = [w for w in self.workers if w.alive]
        for worker in live:
            worker.reloaded.clear()
            worker.signal(signal.SIGHUP)
        pending = [asyncio.ensure_future(w.reloaded.wait()) for w in live]
        if pending:
            _, late = await asyncio.wait(pending, timeout=_RELOAD_TIMEOUT_S)
            for task in late:
                task.cancel()
            if late:
                log.warning("reload_workers_late", workers=len(late))
        log.info("reloaded", config=str(self.path))
        notify("READY=1")

    async def stop_workers(self) -> None:
        self.stopping = True
        for task in list(self.watchers):
            task.cancel()
        for worker in self.workers:
            worker.signal(signal.SIGTERM)
        procs = [w.proc for w in self.workers if w.proc is not None]
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if waits:
            _, late = await asyncio.wait(waits, timeout=_EXIT_TIMEOUT_S)
            if late:
                log.error("workers_killed", workers=len(late))
                for worker in self.workers:
                    worker.signal(signal.SIGKILL)
                await asyncio.wait(waits, timeout=5.0)


async def supervise(path: Path, settings: Settings) -> int:
    """``mailbridge serve`` with ``[smtp] workers > 1``; the exit status (logging is set up)."""
    try:
        reserved, listen = reserve_addresses(settings.smtp.listen)
    except OSError as exc:
        log.error("start_failed", error=str(exc))
        return 1
    gateway = Gateway(settings, smtp=False, owns_logging=True)
    try:
        await gateway.start()
    except (OSError, ConfigError, StorageError, ssl.SSLError) as exc:
        log.error("start_failed", error=str(exc))
        for sock in reserved:
            sock.close()
        return 1

    loop = asyncio.get_running_loop()
    pid_file = settings.daemon.pid_file
    sup = _Supervisor(path, settings, gateway, listen)
    gateway.listeners_up = lambda: all(w.alive and w.ready.is_set() for w in sup.workers)
    loop.add_reader(sup.wake_r.fileno(), sup.on_datagram)
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(sup.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        for worker in sup.workers:
            await sup.spawn(worker)
        ready = await asyncio.gather(*(sup.wait_ready(w, READY_TIMEOUT_S) for w in sup.workers))
        if not all(ready):
            failed = [w.index for w, ok in zip(sup.workers, ready, strict=True) if not ok]
            log.error("start_failed", error=f"worker(s) {failed} did not start")
            await sup.stop_workers()
            await gateway.stop(drain_s=0)
            return 1
        for worker in sup.workers:
            sup.watch(worker)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        addresses = " ".join(listen)
        if pid_file is not None:
            write_pid_file(pid_file)
        notify("READY=1", f"STATUS=accepting mail on {addresses} ({len(sup.workers)} workers)")
        log.info("started", addresses=addresses, pid=os.getpid(), workers=len(sup.workers))
        await stop.wait()
        notify("STOPPING=1")
        log.info("stopping")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in list(reloads):
            await task
        # the workers drain their sessions while delivery stops here
        await asyncio.gather(sup.stop_workers(), gateway.stop(drain_s=0))
        log.info("stopped")
    except OSError as exc:  # the PID file cannot be written
        log.error("pid_file_failed", path=pid_file, error=str(exc))
        return 1
    finally:
        if pid_file is not None:
            remove_pid_file(pid_file)
        if not sup.stopping:
            await sup.stop_workers()
            await gateway.stop(drain_s=0)
        sup.close()
        for sock in reserved:
            sock.close()
    return 0
