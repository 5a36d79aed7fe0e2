"""The composition root: builds the gateway and owns its signals and shutdown.

:class:`Gateway` wires storage, providers, the dispatcher, the reply mailer
and the SMTP listeners together; :func:`serve` runs one until SIGTERM:

* start: open storage (schema created or migrated), build providers, open
  the listeners, start the dispatcher and the mailer, ``READY=1``;
* SIGHUP: read the config again; accounts, limits, mailboxes, TLS files,
  the reply smarthost and providers take effect for the next transactions,
  open connections stay. A config that does not load (or whose providers or
  TLS files cannot be built) is refused with one log line and the old one
  kept. Listen addresses and the storage URL change only on restart;
* SIGTERM/SIGINT: ``STOPPING=1``, close the listeners, let sessions inside
  DATA finish (at most ``DRAIN_S``), tell idle sessions ``421``, stop the
  dispatcher (sends under way finish or their lease runs out) and the
  mailer, close storage, exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mailbridge.config import config_warnings, load_config
from mailbridge.dispatcher import Dispatcher
from mailbridge.errors import ConfigError, StorageError
from mailbridge.log import configure_logging, get_logger
from mailbridge.mailer import Mailer
from mailbridge.providers.factory import build_providers
from mailbridge.sdnotify import notify
from mailbridge.settings import Settings
from mailbridge.smtp_server import ConnectionGate, MailHandler, SmtpServer
from mailbridge.storage.base import Storage
from mailbridge.storage.factory import open_storage

__all__ = ["DRAIN_S", "Gateway", "run", "serve"]

#: Longest wait for sessions inside DATA when stopping.
DRAIN_S = 10.0
#: Longest wait for provider sends and a reply under way when stopping.
STOP_S = 10.0

log = get_logger("mailbridge.app")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """Everything ``serve`` runs, startable and stoppable in-process (tests use it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self._given_storage = storage
        self._clock = clock
        self.storage: Storage | None = None
        self.dispatcher: Dispatcher | None = None
        self.mailer: Mailer | None = None
        self.handler: MailHandler | None = None
        self.smtp: SmtpServer | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each SMTP listener."""
        return self.smtp.addresses if self.smtp is not None else []

    async def start(self) -> None:
        settings = self.settings
        storage = self._given_storage or open_storage(settings.storage.url)
        await storage.open()
        self.storage = storage
        try:
            providers = build_providers(settings.providers)
            owner = f"{socket.gethostname()}:{os.getpid()}"
            self.dispatcher = Dispatcher(
                storage, providers, settings, clock=self._clock, owner=owner
            )
            self.mailer = Mailer(storage, settings, clock=self._clock)
            self.handler = MailHandler(
                settings=settings,
                storage=storage,
                gate=ConnectionGate(),
                on_request=self.dispatcher.wake,
                on_reply=self.mailer.wake,
                clock=self._clock,
            )
            self.smtp = SmtpServer(self.handler, settings)
            await self.smtp.start()
            await self.dispatcher.start()
            await self.mailer.start()
        except BaseException:
            await self.stop(drain_s=0)
            raise

    def reload(self, settings: Settings) -> None:
        """Apply ``settings`` (raises, changing nothing, when providers or TLS cannot be built)."""
        if self.smtp is None or self.dispatcher is None or self.mailer is None:
            raise RuntimeError("the gateway is not running")
        if settings.storage != self.settings.storage:
            log.warning("reload_storage_ignored", reason="the storage URL changes on restart")
        tls = SmtpServer.make_tls(settings)
        providers = build_providers(settings.providers)
        self.smtp.reload(settings, tls)
        self.dispatcher.reload(settings, providers)
        self.mailer.reload(settings)
        self.settings = settings

    async def stop(self, *, drain_s: float = DRAIN_S) -> bool:
        """Drain and stop; True when no session was cut inside DATA."""
        clean = True
        if self.smtp is not None:
            clean = await self.smtp.drain(drain_s)
        if self.dispatcher is not None:
            await self.dispatcher.stop(STOP_S)
        if self.mailer is not None:
            await self.mailer.stop(STOP_S)
        if self.handler is not None:
            self.handler.close()
        if self.storage is not None:
            await self.storage.close()
            self.storage = None
        return clean


async def serve(settings_path: str | Path) -> int:
    """Run the gateway configured at ``settings_path`` until SIGTERM; the exit status."""
    path = Path(settings_path)
    try:
        settings = load_config(path)
    except ConfigError as exc:
        print(str(exc), flush=True)
        return 1
    configure_logging(settings.logging)
    for warning in config_warnings(settings):
        log.warning("config_warning", message=warning)

    gateway = Gateway(settings)
    try:
        await gateway.start()
    except (OSError, ConfigError, StorageError, ssl.SSLError) as exc:
        log.error("start_failed", error=str(exc))
        return 1

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

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

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    addresses = " ".join(f"{h}:{p}" for h, p in gateway.addresses)
    notify("READY=1", f"STATUS=accepting mail on {addresses}")
    log.info("started", addresses=addresses, pid=os.getpid())
    try:
        await stop.wait()
    finally:
        notify("STOPPING=1")
        log.info("stopping")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in list(reloads):
            await task
        clean = await gateway.stop()
        log.info("stopped", drained=clean)
    return 0


def run(settings_path: str | Path) -> int:
    """``mailbridge serve``: run :func:`serve` in a fresh event loop."""
    return asyncio.run(serve(settings_path))
