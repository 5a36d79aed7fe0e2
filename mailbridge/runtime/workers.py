"""One SMTP worker process of ``[smtp] workers = N``: listeners and handler, no delivery.

The supervisor (:mod:`mailbridge.runtime.supervisor`) starts each worker as
``python -m mailbridge.cli serve --config X --worker i``, which lands in
:func:`serve_worker`. The worker binds the parent's addresses with
``SO_REUSEPORT`` (the kernel spreads connections over the workers), opens its
own storage connection on the parent's storage URL and runs the SMTP handler;
SQLite's write lock serialises the workers' commits, and a commit that cannot
be made is a ``451 4.3.0`` as in one process. After a commit that stored SMS
rows (or queued a reply) it wakes the parent with a datagram
(:class:`~mailbridge.runtime.worker_wire.WakeSender`); with ``[http]`` on it
sends its metrics snapshot every :data:`~mailbridge.runtime.worker_wire.METRICS_EVERY_S`.
SIGHUP: it reads the config (keeping the parent's storage) and answers
``reloaded``; SIGTERM/SIGINT, or its lifeline pipe closing (the parent is
gone, ``kill -9``): it drains its sessions and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import ssl
from pathlib import Path

import structlog

from mailbridge.core.config import load_config
from mailbridge.errors import ConfigError, StorageError
from mailbridge.http.metrics import Metrics
from mailbridge.log import configure_logging, get_logger
from mailbridge.runtime.app import Gateway
from mailbridge.runtime.config_file import read_settings
from mailbridge.runtime.signals import DaemonSignals
from mailbridge.runtime.tasks import cancel_and_wait
from mailbridge.runtime.worker_wire import (
    METRICS_EVERY_S,
    READY,
    RELOADED,
    WORKER_ENV,
    WakeSender,
    WorkerSpec,
    metrics_datagram,
)
from mailbridge.settings import StorageSettings

__all__ = ["serve_worker"]

log = get_logger("mailbridge.workers")


async def _forward_metrics(metrics: Metrics, wake: WakeSender, index: int) -> None:
    """Send this worker's metrics to the parent every :data:`METRICS_EVERY_S`."""
    pid = os.getpid()
    last = b""
    quiet = 0
    while True:
        payload = metrics.snapshot(pid)
        if payload != last or quiet >= 10:  # unchanged figures: every 10 s (a parent restart)
            wake.send(metrics_datagram(index, payload))
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
        wake.send(RELOADED + str(index).encode())

    signals = DaemonSignals(reload)

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
            signals.stop.set()

    os.set_blocking(spec.life_fd, False)
    loop.add_reader(spec.life_fd, on_life)
    signals.install()
    wake.send(READY + str(index).encode())
    log.info("worker_started", pid=os.getpid())
    forward: asyncio.Task[None] | None = None
    if gateway.metrics is not None:
        forward = loop.create_task(_forward_metrics(gateway.metrics, wake, index))
    try:
        await signals.stop.wait()
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(spec.life_fd)
        await signals.release()
        clean = await gateway.stop()
        if forward is not None:
            await cancel_and_wait(forward)
            if gateway.metrics is not None:  # the last figures, drained sessions included
                wake.send(metrics_datagram(index, gateway.metrics.snapshot(os.getpid())))
        wake_sock.close()
        log.info("worker_stopped", drained=clean)
    return 0
