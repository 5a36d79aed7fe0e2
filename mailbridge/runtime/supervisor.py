"""``[smtp] workers = N``: the parent that supervises N SMTP worker processes.

With ``workers > 1``, ``mailbridge serve`` is a small supervisor (the parent):

* it binds every ``[smtp] listen`` address once with ``SO_REUSEPORT`` and
  never listens on it (:func:`reserve_addresses`): the port stays reserved (a
  port 0 gets its number here) while workers come and go;
* it opens the storage (creating or migrating the schema) and runs the
  dispatcher and the reply mailer: delivery happens in this process only;
* it starts N workers (:mod:`mailbridge.runtime.workers`), each ``python -m
  mailbridge.cli serve --config X --worker i`` (a plain child process: nothing
  pickled, its own command line in ``ps``, stdout/stderr shared with the
  parent), handing each its :class:`~mailbridge.runtime.worker_wire.WorkerSpec`
  in the environment;
* it reads the workers' datagrams (:mod:`mailbridge.runtime.worker_wire`): a
  wake after a commit that stored SMS rows (or queued a reply) wakes the
  dispatcher (or the mailer); a datagram that cannot be sent only costs
  latency, as the dispatcher looks at the queue anyway after its capped idle
  sleep. With ``[http]`` on, each worker's metrics snapshot (once a second) is
  added to the parent's own figures (``Metrics.absorb``) for ``/metrics`` and
  the status page;
* ``READY=1`` once every worker listens. SIGHUP: the parent reads the config;
  if it loads, the parent applies it and forwards SIGHUP, and ``READY=1``
  follows once every worker has reloaded. SIGTERM/SIGINT: forwarded; the
  parent stops its dispatcher and mailer while the workers drain, then exits 0.
  A worker that exits on its own is logged and started again (with a backoff
  when it keeps dying). A worker whose parent is gone (``kill -9``) sees its
  lifeline pipe close and drains and exits by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailbridge.core.config import load_config
from mailbridge.errors import ConfigError, StorageError
from mailbridge.log import get_logger
from mailbridge.runtime.app import DRAIN_S, Gateway
from mailbridge.runtime.pidfile import remove_pid_file, write_pid_file
from mailbridge.runtime.sdnotify import notify
from mailbridge.runtime.signals import DaemonSignals
from mailbridge.runtime.worker_wire import (
    AT,
    DATAGRAM_MAX,
    DUE,
    METRICS,
    READY,
    RELOADED,
    REPLY,
    WORKER_ENV,
    WorkerSpec,
    due_time,
)
from mailbridge.settings import Settings
from mailbridge.smtp.server import parse_listen

__all__ = ["READY_TIMEOUT_S", "reserve_addresses", "supervise"]

log = get_logger("mailbridge.workers")

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
                data = self.wake_r.recv(DATAGRAM_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        if data.startswith(METRICS):
            index, _, payload = data[len(METRICS) :].partition(b" ")
            if self.gateway.metrics is not None and index.isdigit():
                self.gateway.metrics.absorb(int(index), payload)
            return
        for prefix, attr in ((READY, "ready"), (RELOADED, "reloaded")):
            if data.startswith(prefix):
                with contextlib.suppress(ValueError, IndexError):
                    event: asyncio.Event = getattr(self.workers[int(data[len(prefix) :])], attr)
                    event.set()
                return
        kinds, _, stamp = data.partition(AT)
        if DUE in kinds and self.gateway.dispatcher is not None:
            self.gateway.dispatcher.wake(due_time(stamp))
        if REPLY in kinds and self.gateway.mailer is not None:
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
    signals = DaemonSignals(sup.reload)

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
        signals.install()
        addresses = " ".join(listen)
        if pid_file is not None:
            write_pid_file(pid_file)
        notify("READY=1", f"STATUS=accepting mail on {addresses} ({len(sup.workers)} workers)")
        log.info("started", addresses=addresses, pid=os.getpid(), workers=len(sup.workers))
        await signals.stop.wait()
        await signals.stopping(log)
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
