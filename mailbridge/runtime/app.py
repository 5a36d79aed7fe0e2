"""The composition root: builds the gateway and owns its signals and shutdown.

:class:`Gateway` wires storage, providers, the dispatcher, the reply mailer,
the provider events sink (receipts and SMS from phones, given to the
providers by the factory), the status poller and the SMTP listeners
together; :func:`mailbridge.runtime.process.serve` runs one until SIGTERM
(or supervises SMTP workers that each run one):

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

import os
import secrets
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from mailbridge.core.leases import make_owner
from mailbridge.delivery.dispatcher import Dispatcher
from mailbridge.delivery.events import StorageEvents
from mailbridge.delivery.mailer import Mailer
from mailbridge.delivery.status import StatusPoller
from mailbridge.http.figures import Figures
from mailbridge.http.metrics import BreakerView, Metrics
from mailbridge.http.server import HttpServer
from mailbridge.log import configure_logging, get_logger
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.providers.base import Provider
from mailbridge.providers.events import ProviderEvents
from mailbridge.providers.factory import build_providers
from mailbridge.runtime.retention import Retention
from mailbridge.runtime.sdnotify import Heartbeat
from mailbridge.settings import Settings
from mailbridge.smtp.server import ConnectionGate, MailHandler, SmtpServer
from mailbridge.storage.base import Storage
from mailbridge.storage.factory import open_storage

__all__ = ["DRAIN_S", "STOP_S", "Gateway"]

#: Longest wait for sessions inside DATA when stopping.
DRAIN_S = 10.0
#: Longest wait for provider sends and a reply under way when stopping.
STOP_S = 10.0

log = get_logger("mailbridge.app")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _nothing(*_args: object) -> None:
    return None


class Gateway:
    """Everything ``serve`` runs, startable and stoppable in-process (tests use it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage | None = None,
        clock: Callable[[], datetime] = _utcnow,
        smtp: bool = True,
        delivery: bool = True,
        listen: Sequence[str] | None = None,
        reuse_port: bool = False,
        on_request: Callable[[datetime | None], None] | None = None,
        on_reply: Callable[[], None] | None = None,
        events: ProviderEvents | None = None,
        owns_logging: bool = False,
    ) -> None:
        """``smtp``/``delivery`` pick the halves to run (a worker process runs only the SMTP
        side, its parent only the dispatcher and mailer); ``listen``/``reuse_port`` go to
        :class:`SmtpServer`; ``on_request``/``on_reply`` are called after a commit that stored
        SMS rows or queued a reply, when this process runs no dispatcher or mailer to wake;
        ``events`` is where providers that hear back (``smpp``) store receipts and inbound SMS
        (default: a :class:`StorageEvents` on this gateway's storage, waking its mailer).
        ``owns_logging``: this gateway owns the process's logging (``serve`` and workers),
        so a reload with another ``[logging]`` sets it up again.
        """
        self._events = events
        self._providers: dict[str, Provider] = {}
        self.settings = settings
        self._given_storage = storage
        self._clock = clock
        self._run_smtp = smtp
        self._run_delivery = delivery
        self._listen = listen
        self._reuse_port = reuse_port
        self._on_request = on_request
        self._on_reply = on_reply
        self._owns_logging = owns_logging
        self.storage: Storage | None = None
        self.dispatcher: Dispatcher | None = None
        self.mailer: Mailer | None = None
        self.retention: Retention | None = None
        self.events: StorageEvents | None = None
        self.status: StatusPoller | None = None
        self.handler: MailHandler | None = None
        self.smtp: SmtpServer | None = None
        #: Metrics of this process when ``[http]`` is on (workers forward theirs to the parent).
        self.metrics: Metrics | None = Metrics() if settings.http.enabled else None
        self.observer: Observer = self.metrics or NULL_OBSERVER
        self.http: HttpServer | None = None
        self.heartbeat: Heartbeat | None = None
        #: Whether the SMTP listeners are up (the supervisor of workers replaces it).
        self.listeners_up: Callable[[], bool] = lambda: bool(self.addresses)

    def breakers(self) -> list[BreakerView]:
        """Each provider's breaker, for metrics and health (empty without a dispatcher)."""
        if self.dispatcher is None:
            return []
        states = self.dispatcher.breaker_states(self._clock())
        rates = {p.name: p.rate_per_s for p in self.settings.providers}
        return [
            BreakerView(name=name, state=state, rate_per_s=rates.get(name, 0.0))
            for name, state in states.items()
        ]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each SMTP listener."""
        return self.smtp.addresses if self.smtp is not None else []

    async def start(self) -> None:
        settings = self.settings
        storage = self._given_storage or open_storage(settings.storage.url)
        if self.metrics is not None:
            storage.observer = self.observer  # storage commit latency
        await storage.open()
        self.storage = storage
        try:
            on_request = self._on_request or _nothing
            on_reply = self._on_reply or _nothing
            if self._run_delivery:
                self.events = StorageEvents(
                    storage, settings, clock=self._clock, observer=self.observer
                )
                if self._events is None:
                    self._events = self.events
                providers = build_providers(settings.providers, self._events)
                self._providers = providers
                owner = make_owner(socket.gethostname(), os.getpid(), secrets.token_hex(4))
                self.dispatcher = Dispatcher(
                    storage,
                    providers,
                    settings,
                    clock=self._clock,
                    owner=owner,
                    single_owner=settings.storage.url.startswith("sqlite:"),
                    observer=self.observer,
                )
                self.retention = Retention(storage, settings.storage, clock=self._clock)
                self.mailer = Mailer(storage, settings, clock=self._clock, observer=self.observer)
                self.events.wake_on_mail(self.mailer.wake)
                on_request, on_reply = self.dispatcher.wake, self.mailer.wake
                self.status = StatusPoller(
                    storage,
                    self._events,
                    settings,
                    clock=self._clock,
                    flush=self.events.flush_parts,
                )
                self.status.set_providers(providers)
            if self._run_smtp:
                self.handler = MailHandler(
                    settings=settings,
                    storage=storage,
                    gate=ConnectionGate(self.observer),
                    on_request=on_request,
                    on_reply=on_reply,
                    clock=self._clock,
                )
                self.smtp = SmtpServer(
                    self.handler, settings, listen=self._listen, reuse_port=self._reuse_port
                )
                await self.smtp.start()
            if self.dispatcher is not None and self.mailer is not None:
                await self.dispatcher.start()
                await self.mailer.start()
            if self.retention is not None:
                self.retention.start()
            if self.status is not None:
                await self.status.start()
            if self.dispatcher is not None:
                self.heartbeat = Heartbeat()
                self.heartbeat.start()
                if self.metrics is not None:
                    await self._start_http(self.metrics, storage, self.heartbeat)
        except BaseException:
            await self.stop(drain_s=0)
            raise

    async def _start_http(self, metrics: Metrics, storage: Storage, beat: Heartbeat) -> None:
        figures = Figures(storage)
        metrics.read_queue_from(figures.latest)
        metrics.read_breakers_from(self.breakers)
        self.http = HttpServer(
            self.settings,
            metrics=metrics,
            figures=figures,
            breakers=self.breakers,
            listeners=lambda: self.listeners_up(),
            late_s=beat.late_s,
        )
        await self.http.start()

    @property
    def http_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each HTTP listener."""
        return self.http.addresses if self.http is not None else []

    def reload(self, settings: Settings) -> None:
        """Apply ``settings`` (raises, changing nothing, when providers or TLS cannot be built)."""
        if self.smtp is None and self.dispatcher is None:
            raise RuntimeError("the gateway is not running")
        if settings.storage != self.settings.storage:
            log.warning("reload_storage_ignored", reason="the storage URL changes on restart")
        tls = SmtpServer.make_tls(settings)  # checked in every process: workers build it too
        providers = (
            build_providers(settings.providers, self._events, keep=self._providers)
            if self.dispatcher is not None
            else {}
        )
        if self.smtp is not None:
            self.smtp.reload(settings, tls)
        if self.dispatcher is not None and self.mailer is not None:
            self.dispatcher.reload(settings, providers)
            self.mailer.reload(settings)
            self._providers = providers
        if self.retention is not None:
            self.retention.reload(settings.storage)
        if settings.logging != self.settings.logging and self._owns_logging:
            configure_logging(settings.logging)
            new = settings.logging
            log.info("logging_reloaded", level=new.level, format=new.format)
        if settings.daemon != self.settings.daemon and self._run_delivery:
            log.warning("reload_pid_file_ignored", reason="the PID file changes on restart")
        if self.events is not None:
            self.events.reload(settings)
        if self.status is not None:
            self.status.reload(settings, providers)
        if self.http is not None:
            if settings.http.listen != self.settings.http.listen:
                log.warning("reload_http_listen_ignored", reason="listen changes on restart")
            self.http.reload(settings)
        self.settings = settings

    async def stop(self, *, drain_s: float = DRAIN_S) -> bool:
        """Drain and stop; True when no session was cut inside DATA."""
        clean = True
        if self.smtp is not None:
            clean = await self.smtp.drain(drain_s)
        if self.retention is not None:
            await self.retention.stop()
        if self.status is not None:
            await self.status.stop()
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self.heartbeat is not None:
            await self.heartbeat.stop()
            self.heartbeat = None
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
