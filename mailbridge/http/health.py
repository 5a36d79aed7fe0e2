"""``/healthz`` and ``/readyz``: what a load balancer, a script or systemd asks.

* ``/healthz`` — the process answers and its event loop turns: 200 unless
  the heartbeat (``mailbridge.runtime.sdnotify.Heartbeat``) is more than
  :data:`LATE_S` seconds overdue, then 503.
* ``/readyz`` — the gateway can do its job: storage answers (a read on the
  path commits take, at most :data:`~mailbridge.http.figures.MAX_AGE_S`
  old), the SMTP listeners are up, and every route (``[routing] default``
  and each rule) has at least one provider whose breaker is not open. 200
  when all hold, 503 otherwise, with each check in the JSON body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mailbridge.http.metrics import BreakerView
from mailbridge.settings import Settings

__all__ = ["LATE_S", "healthz", "readyz"]

#: A heartbeat this many seconds overdue makes ``/healthz`` fail.
LATE_S = 10.0


def healthz(*, late_s: float, uptime_s: float, pid: int) -> tuple[int, dict[str, Any]]:
    ok = late_s <= LATE_S
    body = {
        "status": "ok" if ok else "stalled",
        "pid": pid,
        "uptime_s": round(uptime_s, 1),
        "loop_late_s": round(late_s, 3),
    }
    return (200 if ok else 503), body


def route_checks(settings: Settings, breakers: Iterable[BreakerView]) -> dict[str, Any]:
    """Per route: its providers and whether one of them is not open."""
    state = {b.name: b.state for b in breakers}
    routes: list[tuple[str, tuple[str, ...]]] = [("default", settings.routing.default)]
    routes += [(rule.prefix, rule.providers) for rule in settings.routing.rules]
    out: dict[str, Any] = {}
    for name, providers in routes:
        usable = [p for p in providers if state.get(p, "closed") != "open"]
        out[name] = {"ok": bool(usable) or not providers, "usable": usable}
    return out


def readyz(
    settings: Settings,
    *,
    storage_ok: bool,
    storage_error: str | None,
    listeners: Callable[[], bool],
    breakers: Iterable[BreakerView],
) -> tuple[int, dict[str, Any]]:
    routes = route_checks(settings, breakers)
    listening = listeners()
    checks: dict[str, dict[str, Any]] = {
        "storage": {"ok": storage_ok, **({"error": storage_error} if storage_error else {})},
        "listeners": {"ok": listening},
        "routes": {"ok": all(r["ok"] for r in routes.values()), "routes": routes},
    }
    ready = all(c["ok"] for c in checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", "checks": checks}
