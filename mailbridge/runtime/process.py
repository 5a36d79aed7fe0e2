"""The process model: one gateway process, or a parent supervising SMTP workers.

``mailbridge serve`` lands in :func:`run`. With ``[smtp] workers = 1`` (the
default) :func:`serve` runs one :class:`~mailbridge.runtime.app.Gateway` and
owns its signals; with more, it hands over to
:func:`mailbridge.runtime.supervisor.supervise`, whose worker processes come back
here through ``run(..., worker=N)``.

* SIGHUP: read the config again; accounts, limits, mailboxes, TLS files,
  the reply smarthost and providers take effect for the next transactions,
  open connections stay. A config that does not load (or whose providers or
  TLS files cannot be built) is refused with one log line and the old one
  kept. Listen addresses and the storage URL change only on restart;
* SIGTERM/SIGINT: ``STOPPING=1``, drain (:meth:`Gateway.stop`), exit 0.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

from mailbridge.core.config import config_warnings, load_config
from mailbridge.errors import ConfigError, StorageError
from mailbridge.log import configure_logging, get_logger
from mailbridge.runtime.app import Gateway
from mailbridge.runtime.config_file import read_settings
from mailbridge.runtime.pidfile import remove_pid_file, write_pid_file
from mailbridge.runtime.preflight import preflight
from mailbridge.runtime.sdnotify import notify
from mailbridge.runtime.signals import DaemonSignals
from mailbridge.runtime.supervisor import supervise
from mailbridge.runtime.workers import serve_worker

__all__ = ["run", "serve"]

log = get_logger("mailbridge.app")


async def serve(settings_path: str | Path) -> int:
    """Run the gateway configured at ``settings_path`` until SIGTERM; the exit status."""
    path = Path(settings_path)
    settings = read_settings(path)
    if settings is None:
        return 1
    try:
        preflight(settings)  # TLS files and the SQLite file, named by key and path
    except ConfigError as exc:
        print(str(exc), flush=True)
        return 1
    configure_logging(settings.logging)
    for warning in config_warnings(settings):
        log.warning("config_warning", message=warning)
    if settings.smtp.workers > 1:
        return await supervise(path, settings)

    gateway = Gateway(settings, owns_logging=True)
    try:
        await gateway.start()
    except (OSError, ConfigError, StorageError, ssl.SSLError) as exc:
        log.error("start_failed", error=str(exc))
        return 1

    async def reload() -> None:
        notify("RELOADING=1")
        try:
            new = await asyncio.to_thread(load_config, path)
            gateway.reload(new)
        except (ConfigError, OSError, ssl.SSLError) as exc:
            log.error("reload_refused", error=str(exc))
        else:
            log.info("reloaded", config=str(path))
        notify("READY=1")

    signals = DaemonSignals(reload)
    signals.install()
    addresses = " ".join(f"{h}:{p}" for h, p in gateway.addresses)
    pid_file = settings.daemon.pid_file
    if pid_file is not None:
        try:
            write_pid_file(pid_file)
        except OSError as exc:
            log.error("pid_file_failed", path=pid_file, error=str(exc))
            await gateway.stop(drain_s=0)
            return 1
    notify("READY=1", f"STATUS=accepting mail on {addresses}")
    http = " ".join(f"{h}:{p}" for h, p in gateway.http_addresses)
    log.info("started", addresses=addresses, pid=os.getpid(), **({"http": http} if http else {}))
    try:
        await signals.stop.wait()
    finally:
        if pid_file is not None:
            remove_pid_file(pid_file)
        await signals.stopping(log)
        clean = await gateway.stop()
        log.info("stopped", drained=clean)
    return 0


def run(settings_path: str | Path, *, worker: int | None = None) -> int:
    """``mailbridge serve``: run :func:`serve` in a fresh event loop.

    ``worker``: run as SMTP worker ``worker`` of a ``[smtp] workers > 1`` parent
    (started by :func:`mailbridge.runtime.supervisor.supervise`, never by hand).
    """
    if worker is not None:
        return asyncio.run(serve_worker(settings_path, worker))
    return asyncio.run(serve(settings_path))
