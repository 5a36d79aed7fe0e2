"""The status report: the page at ``/``, ``/status.json`` and ``mailbridge status``.

:func:`build_report` gathers the figures into one JSON-ready ``dict`` (the
single source the three outputs share); :func:`render_html` and
:func:`render_text` show it. The report holds ids, accounts, modes, result
lines (``OK - n SMS, ID - …`` / ``ERROR = N (…)``), client IPs and recipient
numbers masked in the middle: never a message text, a password or an API key.

The page is plain HTML with its CSS inline and no script at all: it reloads
itself with ``<meta http-equiv="refresh">``, reads the same with JavaScript
off, and its tables scroll sideways inside a phone's width.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mailbridge import __version__
from mailbridge.http.figures import RecentRequest
from mailbridge.http.metrics import BreakerView, ProviderActivity, QueueFigures, Refusal
from mailbridge.models import SmsState
from mailbridge.settings import Settings

__all__ = ["REFRESH_S", "build_report", "mask", "render_html", "render_text"]

#: The page reloads itself this often (seconds).
REFRESH_S = 10

_STATES = [s.value for s in SmsState]


def mask(value: str) -> str:
    """A number (or address) with its middle hidden: ``+79991234567`` → ``+799******67``."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) <= 4:
        return "*" * len(value)
    head = min(5, len(value) // 3)
    tail = min(2, len(value) // 4)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    settings: Settings,
    *,
    now: float,
    queue: QueueFigures | None,
    requests: Sequence[RecentRequest],
    refusals: Iterable[Refusal] = (),
    breakers: Iterable[BreakerView] | None = None,
    activity: Mapping[str, ProviderActivity] | None = None,
    started: float | None = None,
    storage_error: str | None = None,
) -> dict[str, Any]:
    """The report as plain JSON values; ``breakers``/``started`` None: not from the daemon."""
    states = {name: view.state for name, view in ((b.name, b) for b in (breakers or ()))}
    providers = []
    for conf in settings.providers:
        act = (activity or {}).get(conf.name)
        providers.append(
            {
                "name": conf.name,
                "type": conf.type,
                "breaker": states.get(conf.name, "unknown" if breakers is None else "closed"),
                "rate_per_s": conf.rate_per_s,
                "sent_per_s": round(act.rate_per_s(now), 2) if act else 0.0,
                "sent": act.sent if act else 0,
                "errors": act.errors if act else 0,
                "last_success": _iso(act.last_success) if act else None,
                "last_error": _iso(act.last_error) if act else None,
                "last_error_kind": act.last_error_kind if act else "",
            }
        )
    queue_part: dict[str, Any] | None = None
    if queue is not None:
        by_state = {s: int(queue.by_state.get(s, 0)) for s in _STATES}
        age = max(0.0, queue.read_at - queue.oldest_due) if queue.oldest_due is not None else None
        queue_part = {
            "sms_by_state": by_state,
            "oldest_due": _iso(queue.oldest_due),
            "oldest_due_age_s": None if age is None else round(age, 1),
            "replies_waiting": queue.replies_waiting,
            "read_at": _iso(queue.read_at),
        }
    return {
        "version": __version__,
        "now": _iso(now),
        "started": _iso(started),
        "uptime_s": None if started is None else round(now - started),
        "queue": queue_part,
        "storage_error": storage_error,
        "providers": providers,
        "requests": [
            {
                "id": r.summary.request_id,
                "account": r.summary.account,
                "received": _iso(r.summary.received_at.timestamp()),
                "mode": r.summary.mode,
                "sms": r.summary.sms_total,
                "states": {k: v for k, v in r.summary.states.items() if v},
                "result": r.summary.result,
                "recipients": [mask(n) for n in r.recipients],
            }
            for r in requests
        ],
        "refusals": [
            {
                "at": _iso(r.at),
                "what": r.what,
                "mode": r.mode,
                "id": r.request_id,
                "account": r.account,
                "client_ip": r.client_ip,
            }
            for r in refusals
        ],
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"


def _e(value: object) -> str:
    return html.escape("-" if value is None or value == "" else str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    if not rows:
        return '<p class="none">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{attr}><tr>{head}</tr>{body}</table></div>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1rem;
color:#1b1f24;background:#f6f7f9;max-width:72rem}
h1{font-size:1.3rem;margin:0 0 .2rem}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
.meta{color:#555;font-size:.85rem}
.cards{display:flex;flex-wrap:wrap;gap:.5rem}
.card{background:#fff;border:1px solid #d8dce1;border-radius:6px;padding:.5rem .8rem;
min-width:6.5rem}
.card b{display:block;font-size:1.4rem}.card span{color:#555;font-size:.8rem}
.warn{border-color:#d4a017;background:#fff8e1}.bad{border-color:#c62828;background:#fdecea}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:.85rem;width:100%}
th,td{border:1px solid #d8dce1;padding:.3rem .45rem;text-align:left;white-space:nowrap}
th{background:#eef0f3}
.none{color:#777}
.closed{color:#1b5e20}.open{color:#c62828;font-weight:bold}.half-open{color:#b26a00}
"""


def render_html(report: Mapping[str, Any], *, refresh_s: int = REFRESH_S) -> str:
    """The status page for ``report``."""
    queue = report.get("queue")
    cards = []
    if queue is not None:
        for state, n in queue["sms_by_state"].items():
            cls = "card bad" if state == "failed" and n else "card"
            cards.append(
                f'<div class="{cls}" id="state-{_e(state)}"><b>{n}</b>'
                f"<span>{_e(state)}</span></div>"
            )
        age = queue["oldest_due_age_s"]
        cls = "card warn" if age is not None and age > 60 else "card"
        cards.append(
            f'<div class="{cls}" id="oldest-due"><b>{_e(_duration(age))}</b>'
            "<span>oldest due</span></div>"
        )
        cards.append(
            f'<div class="card" id="replies-waiting"><b>{queue["replies_waiting"]}</b>'
            "<span>replies waiting</span></div>"
        )
    queue_html = (
        f'<div class="cards">{"".join(cards)}</div>'
        if cards
        else '<p class="none">storage did not answer</p>'
    )
    if report.get("storage_error"):
        queue_html += f'<p class="bad">storage: {_e(report["storage_error"])}</p>'
    provider_rows = [
        (
            p["name"],
            p["type"],
            p["breaker"],
            "unlimited" if not p["rate_per_s"] else f"{p['rate_per_s']:g}/s",
            f"{p['sent_per_s']:g}/s",
            p["sent"],
            p["last_success"],
            f"{p['last_error']} ({p['last_error_kind']})" if p["last_error"] else None,
        )
        for p in report["providers"]
    ]
    providers_html = _table(
        [
            "provider",
            "type",
            "breaker",
            "rate limit",
            "rate (1 min)",
            "sent",
            "last success",
            "last error",
        ],
        provider_rows,
        "providers",
    )
    for state in ("closed", "open", "half-open"):
        providers_html = providers_html.replace(
            f"<td>{state}</td>", f'<td class="{state}">{state}</td>'
        )
    request_rows = [
        (
            r["id"],
            r["account"],
            r["received"],
            r["mode"],
            ", ".join(r["recipients"]),
            " ".join(f"{k}={v}" for k, v in r["states"].items()),
            r["result"],
        )
        for r in report["requests"]
    ]
    refusal_rows = [
        (r["at"], r["what"], r["mode"], r["id"], r["account"], r["client_ip"])
        for r in report["refusals"]
    ]
    uptime = _duration(report["uptime_s"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{int(refresh_s)}">
<title>mailbridge status</title><link rel="icon" href="data:,"><style>{_CSS}</style></head>
<body>
<h1>mailbridge</h1>
<p class="meta">version {_e(report["version"])} · up {_e(uptime)} · {_e(report["now"])} ·
refreshes every {int(refresh_s)} s</p>
<h2>SMS by state</h2>
{queue_html}
<h2>Providers</h2>
{providers_html}
<h2>Last requests</h2>
{_table(["id", "account", "received", "mode", "to", "states", "result"], request_rows, "requests")}
<h2>Last refusals</h2>
{_table(["at", "what", "mode", "id", "account", "client"], refusal_rows, "refusals")}
<p class="meta"><a href="/metrics">metrics</a> · <a href="/healthz">healthz</a> ·
<a href="/readyz">readyz</a> · <a href="/status.json">json</a></p>
</body></html>
"""


def render_text(report: Mapping[str, Any]) -> str:
    """``mailbridge status`` for people."""
    lines = [f"mailbridge {report['version']}  now {report['now']}"]
    if report.get("uptime_s") is not None:
        lines[0] += f"  up {_duration(report['uptime_s'])}"
    queue = report.get("queue")
    if queue is None:
        lines.append("queue: storage did not answer")
    else:
        states = "  ".join(f"{k}={v}" for k, v in queue["sms_by_state"].items())
        lines.append(f"sms: {states}")
        oldest = queue["oldest_due"] or "-"
        lines.append(
            f"oldest due: {oldest} ({_duration(queue['oldest_due_age_s'])})"
            f"  replies waiting: {queue['replies_waiting']}"
        )
    lines.append("providers:")
    for p in report["providers"]:
        rate = "unlimited" if not p["rate_per_s"] else f"{p['rate_per_s']:g}/s"
        rate += f", sending {p['sent_per_s']:g}/s"
        last_error = f"{p['last_error']} ({p['last_error_kind']})" if p["last_error"] else "-"
        lines.append(
            f"  {p['name']} ({p['type']}): breaker {p['breaker']}, rate {rate}, "
            f"last success {p['last_success'] or '-'}, last error {last_error}"
        )
    lines.append("last requests:")
    for r in report["requests"] or []:
        states = " ".join(f"{k}={v}" for k, v in r["states"].items()) or "-"
        lines.append(
            f"  {r['id']}  {r['account'] or '-'}  {r['received']}  {r['mode']}  "
            f"{', '.join(r['recipients']) or '-'}  {states}  {r['result']}"
        )
    if not report["requests"]:
        lines.append("  none")
    if report["refusals"]:
        lines.append("last refusals:")
        for f in report["refusals"]:
            lines.append(
                f"  {f['at']}  {f['what']}  {f['mode'] or '-'}  {f['id'] or '-'}  "
                f"{f['account'] or '-'}  {f['client_ip'] or '-'}"
            )
    return "\n".join(lines) + "\n"
