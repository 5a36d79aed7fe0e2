"""``mailbridge status [--json]``: the figures of the status page, for SSH sessions.

When ``[http]`` listens on a loopback address, the running daemon is asked
for its report (``GET /status.json``, the page's own figures: breaker states,
last successes and errors, refusals, uptime); a bearer token for it may be
given in ``$MAILBRIDGE_HTTP_TOKEN``. Otherwise (no ``[http]``, the daemon
down or refusing) the report is built from storage alone, the same queue
figures and last requests, each provider's breaker shown as ``unknown``.
Exit status: 0, or 3 when storage cannot be read either.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from mailbridge.errors import MailbridgeError
from mailbridge.http.figures import Figures
from mailbridge.http.status import build_report, render_text
from mailbridge.settings import Settings
from mailbridge.storage.base import Storage

__all__ = ["EXIT_STORAGE", "daemon_report", "run_status", "storage_report"]

EXIT_STORAGE = 3
_TIMEOUT_S = 3.0
_LOOPBACK = ("127.", "[::1]", "localhost")


def daemon_report(settings: Settings, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The running daemon's report over its loopback ``[http]`` listener, or None."""
    for entry in settings.http.listen:
        if not entry.startswith(_LOOPBACK) or entry.endswith(":0"):
            continue
        request = urllib.request.Request(f"http://{entry}/status.json")
        token = env.get("MAILBRIDGE_HTTP_TOKEN", "")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as resp:
                data = json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            continue
        if isinstance(data, dict) and "queue" in data:
            return data
    return None


async def storage_report(settings: Settings, storage: Storage) -> dict[str, Any] | None:
    """The report from storage alone (None when storage cannot be read)."""
    try:
        await storage.open()
    except MailbridgeError:
        return None
    try:
        figures = Figures(storage, max_age_s=0.0)
        queue = await figures.queue()
        if queue is None:
            return None
        requests = await figures.recent()
        return build_report(
            settings, now=time.time(), queue=queue, requests=requests, storage_error=figures.error
        )
    finally:
        await storage.close()


def run_status(
    settings: Settings,
    *,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    env: Mapping[str, str],
    open_storage: Callable[[str], Storage] | None = None,
    ask_daemon: bool = True,
) -> int:
    report = daemon_report(settings, env) if ask_daemon else None
    if report is None:
        if open_storage is None:
            from mailbridge.storage.factory import open_storage as factory

            open_storage = factory
        report = asyncio.run(storage_report(settings, open_storage(settings.storage.url)))
        if report is None:
            print("storage cannot be read", file=err)
            return EXIT_STORAGE
        report["source"] = "storage"
    else:
        report["source"] = "daemon"
    if as_json:
        out.write(json.dumps(report, indent=1) + "\n")
    else:
        out.write(render_text(report))
    return 0
