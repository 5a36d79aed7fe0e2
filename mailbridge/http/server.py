"""The ``[http]`` listener on aiohttp: ``/metrics``, ``/healthz``, ``/readyz``, ``/``.

Runs in the process that delivers (the only one with ``[smtp] workers = 1``,
the parent otherwise). With a credential configured (``token_hash``, or
``username`` + ``password_hash``) every path asks for it: ``Authorization:
Bearer <token>`` or basic auth; a credential that verified is remembered
(:class:`~mailbridge.core.passwords.VerifiedCache`) so scrapes cost no scrypt
after the first, and the scrypt of an unknown one runs in a thread. Answers
carry ``Cache-Control: no-store``; no access log is written.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from mailbridge.core.passwords import VerifiedCache, verify_password
from mailbridge.http.figures import Figures
from mailbridge.http.health import healthz, readyz
from mailbridge.http.metrics import BreakerView, Metrics
from mailbridge.http.status import REFRESH_S, build_report, render_html
from mailbridge.settings import Settings

__all__ = ["HttpServer"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_NO_STORE = {"Cache-Control": "no-store"}
#: The text exposition format every Prometheus reads (our names need no UTF-8 escaping).
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def _host_port(entry: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` (checked by the config loader) → (host, port)."""
    if entry.startswith("["):
        host, _, port = entry[1:].partition("]:")
    else:
        host, _, port = entry.rpartition(":")
    return host, int(port)


class HttpServer:
    """The HTTP side of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics,
        figures: Figures,
        breakers: Callable[[], Iterable[BreakerView]],
        listeners: Callable[[], bool],
        late_s: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.figures = figures
        self._breakers = breakers
        self._listeners = listeners
        self._late_s = late_s
        self._verified = VerifiedCache(max_entries=16)
        self._runner: web.AppRunner | None = None
        self._sites: list[web.TCPSite] = []

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each HTTP listener."""
        if self._runner is None:
            return []
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    def reload(self, settings: Settings) -> None:
        """New credentials and routes take effect at once (listen addresses on restart)."""
        self.settings = settings
        self._verified.clear()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._page)
        app.router.add_get("/status.json", self._status_json)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            for entry in self.settings.http.listen:
                host, port = _host_port(entry)
                site = web.TCPSite(runner, host or None, port, reuse_address=True)
                await site.start()
                self._sites.append(site)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self._sites = []
        if runner is not None:
            await runner.cleanup()

    # --- auth -------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        http = self.settings.http
        if not http.has_credentials:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        ok = False
        if scheme.lower() == "bearer" and http.token_hash is not None and value:
            ok = await self._verify("token", value, http.token_hash)
        elif scheme.lower() == "basic" and http.password_hash is not None and value:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            same_user = hmac.compare_digest(user.encode(), (http.username or "").encode())
            ok = await self._verify("basic", password, http.password_hash) and same_user
        if ok:
            return await handler(request)
        challenge = 'Bearer realm="mailbridge"' if http.token_hash else 'Basic realm="mailbridge"'
        return web.json_response(
            {"error": "unauthorized"},
            status=401,
            headers={"WWW-Authenticate": challenge, **_NO_STORE},
        )

    async def _verify(self, key: str, secret: str, stored: str) -> bool:
        if self._verified.check(key, secret, stored):
            return True
        if await asyncio.to_thread(verify_password, secret, stored):
            self._verified.remember(key, secret, stored)
            return True
        return False

    # --- endpoints --------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.figures.queue()  # refreshes only when older than a few seconds
        body = self.metrics.exposition()
        resp = web.Response(body=body, headers=_NO_STORE)
        resp.headers["Content-Type"] = _TEXT_FORMAT
        return resp

    async def _healthz(self, request: web.Request) -> web.Response:
        status, body = healthz(
            late_s=self._late_s(), uptime_s=time.time() - self.metrics.started, pid=os.getpid()
        )
        return web.json_response(body, status=status, headers=_NO_STORE)

    async def _readyz(self, request: web.Request) -> web.Response:
        figures = await self.figures.queue()
        error = self.figures.error
        status, body = readyz(
            self.settings,
            storage_ok=figures is not None and error is None,
            storage_error=error,
            listeners=self._listeners,
            breakers=self._breakers(),
        )
        return web.json_response(body, status=status, headers=_NO_STORE)

    async def _report(self) -> dict[str, Any]:
        queue = await self.figures.queue()
        requests = await self.figures.recent()
        return build_report(
            self.settings,
            now=time.time(),
            queue=queue,
            requests=requests,
            refusals=self.metrics.refusals(),
            breakers=self._breakers(),
            activity=self.metrics.activity,
            started=self.metrics.started,
            storage_error=self.figures.error,
        )

    async def _page(self, request: web.Request) -> web.Response:
        text = render_html(await self._report(), refresh_s=REFRESH_S)
        return web.Response(text=text, content_type="text/html", headers=_NO_STORE)

    async def _status_json(self, request: web.Request) -> web.Response:
        body = json.dumps(await self._report(), indent=1)
        return web.Response(text=body, content_type="application/json", headers=_NO_STORE)
