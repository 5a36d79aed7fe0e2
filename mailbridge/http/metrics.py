"""The Prometheus metrics of the gateway, through ``prometheus_client``.

:class:`Metrics` is the :class:`~mailbridge.observe.Observer` the gateway's
hooks call; each hook is one ``inc``/``observe`` on a child whose labels are
looked up once and kept (``_child``), so the SMTP path pays a dict lookup and
a locked add per mail. Figures that live elsewhere are read when scraped:
queue depth and reply mails waiting come from :class:`QueueFigures` (read
from storage at most every few seconds by ``mailbridge.http.figures``),
breaker states from the dispatcher.

With ``[smtp] workers > 1`` each worker process has its own ``Metrics``;
once a second it sends a snapshot of its cumulative counters and histograms
(and its open-session gauge, and its last refusals) to the parent over the
existing wake datagram socket (``mailbridge.runtime.workers``). The parent
adds the latest snapshot of each worker to its own figures when scraped
(:meth:`Metrics.absorb`); the counters of a worker that died or was
restarted are kept in a retired sum, so totals never go down. A lost
datagram only delays figures by a second. docs/monitoring.md compares this
with ``prometheus_client``'s multiprocess mode.
"""

from __future__ import annotations

import json
import platform
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailbridge import __version__
from mailbridge.models import SmsState
from mailbridge.observe import Observer

__all__ = [
    "FORWARDED",
    "BreakerView",
    "Metrics",
    "ProviderActivity",
    "QueueFigures",
    "Refusal",
]

disable_created_metrics()  # type: ignore[no-untyped-call]
# `_created` series only double the output; nobody alerts on them

#: Families a worker forwards to its parent (what the SMTP side and storage count).
FORWARDED = frozenset(
    {
        "mailbridge_mails",
        "mailbridge_smtp_refused",
        "mailbridge_smtp_sessions_open",
        "mailbridge_storage_commit_duration_seconds",
    }
)

#: Breaker states as the ``mailbridge_provider_breaker_state`` gauge reports them.
BREAKER_VALUES: Mapping[str, int] = {"closed": 0, "half-open": 1, "open": 2}

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_MODES = ("command", "forward", "number")
_STATES = tuple(s.value for s in SmsState)
_RECENT = 20
_RATE_WINDOW_S = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFigures:
    """What storage says about the queue, read at ``read_at`` (epoch seconds)."""

    by_state: Mapping[str, int]
    oldest_due: float | None  # epoch seconds of the oldest scheduled SMS that is due
    replies_waiting: int
    read_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerView:
    name: str
    state: str  # closed | half-open | open
    rate_per_s: float  # configured; 0: unlimited


@dataclass(slots=True, kw_only=True)
class ProviderActivity:
    """What the dispatcher's attempts taught about one provider (this process's life)."""

    last_success: float | None = None
    last_error: float | None = None
    last_error_kind: str = ""  # temporary | permanent
    sent: int = 0
    errors: int = 0
    #: (second, SMS sent in it) of the last minute or so, for the observed rate
    seconds: deque[list[int]] = field(default_factory=lambda: deque(maxlen=_RATE_WINDOW_S + 1))

    def count_sent(self, now: float, n: int) -> None:
        second = int(now)
        if self.seconds and self.seconds[-1][0] == second:
            self.seconds[-1][1] += n
        else:
            self.seconds.append([second, n])

    def rate_per_s(self, now: float) -> float:
        """SMS per second sent over the last minute."""
        start = int(now) - _RATE_WINDOW_S
        return sum(n for second, n in self.seconds if second > start) / _RATE_WINDOW_S


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """One mail or session refused, for the status page (no texts, no passwords)."""

    at: float
    what: str  # "ERROR = 7" or "RCPT 550"
    mode: str = ""
    request_id: str = ""
    account: str = ""
    client_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "what": self.what,
            "mode": self.mode,
            "request_id": self.request_id,
            "account": self.account,
            "client_ip": self.client_ip,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Refusal:
        return cls(
            at=float(raw["at"]),
            what=str(raw["what"]),
            mode=str(raw.get("mode", "")),
            request_id=str(raw.get("request_id", "")),
            account=str(raw.get("account", "")),
            client_ip=str(raw.get("client_ip", "")),
        )


_Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class _WorkerSnapshot:
    pid: int
    samples: dict[_Key, float] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)


class Metrics(Observer):
    """The gateway's metrics; see the module docstring."""

    __slots__ = (
        "_accepted",
        "_attempt_seconds",
        "_attempts",
        "_breakers",
        "_children",
        "_commit",
        "_lock",
        "_mails",
        "_queue",
        "_rate_wait_seconds",
        "_rate_waits",
        "_refused",
        "_replies",
        "_retired",
        "_sessions",
        "_transitions",
        "_workers",
        "activity",
        "local",
        "recent",
        "registry",
        "started",
    )

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.started = clock()
        self.local = CollectorRegistry(auto_describe=True)
        r = self.local
        self._mails = Counter(
            "mailbridge_mails",
            "Mails answered, by mode and result (ok, error_N for ERROR = N, tempfail for 451).",
            ["mode", "result"],
            registry=r,
        )
        self._refused = Counter(
            "mailbridge_smtp_refused",
            "SMTP refusals before a result line, by stage (connect, auth, mail, rcpt, data) "
            "and reply code.",
            ["stage", "code"],
            registry=r,
        )
        self._sessions = Gauge(
            "mailbridge_smtp_sessions_open", "SMTP sessions open now.", registry=r
        )
        self._transitions = Counter(
            "mailbridge_sms_transitions",
            "SMS rows moved between states by the dispatcher and by delivery receipts, "
            "by provider ('' for none).",
            ["from_state", "to_state", "provider"],
            registry=r,
        )
        self._attempts = Counter(
            "mailbridge_provider_attempts",
            "SMS rows settled by a provider attempt, by outcome "
            "(sent, temporary, permanent, deferred, failed, expired).",
            ["provider", "outcome"],
            registry=r,
        )
        self._attempt_seconds = Histogram(
            "mailbridge_provider_attempt_duration_seconds",
            "Duration of the provider call that carried an SMS row (once per row).",
            ["provider"],
            buckets=_ATTEMPT_BUCKETS,
            registry=r,
        )
        self._accepted = Histogram(
            "mailbridge_sms_accept_delay_seconds",
            "From the moment an SMS became due (its 250 when sent now) to the provider "
            "accepting it.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._rate_waits = Counter(
            "mailbridge_provider_rate_limit_waits",
            "Times the dispatcher waited for a provider's rate_per_s.",
            ["provider"],
            registry=r,
        )
        self._rate_wait_seconds = Counter(
            "mailbridge_provider_rate_limit_wait_seconds",
            "Seconds spent waiting for a provider's rate_per_s.",
            ["provider"],
            registry=r,
        )
        self._replies = Counter(
            "mailbridge_reply_mails",
            "Reply mails handed to the smarthost (sent), or not (retry, failed).",
            ["outcome"],
            registry=r,
        )
        self._commit = Histogram(
            "mailbridge_storage_commit_duration_seconds",
            "Time of one storage transaction, commit included.",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        info = Info("mailbridge_build", "The running version.", registry=r)
        info.info({"version": __version__, "python": platform.python_version()})
        for mode in _MODES:
            self._mails.labels(mode, "ok")
        for outcome in ("sent", "retry", "failed"):
            self._replies.labels(outcome)
        self._lock = threading.Lock()  # guards the child cache; commits come from a thread
        self._children: dict[tuple[Any, ...], Any] = {}
        self._queue: Callable[[], QueueFigures | None] = lambda: None
        self._breakers: Callable[[], Iterable[BreakerView]] = tuple
        self._workers: dict[int, _WorkerSnapshot] = {}
        self._retired: dict[_Key, float] = {}
        self.activity: dict[str, ProviderActivity] = {}
        self.recent: deque[Refusal] = deque(maxlen=_RECENT)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exported(self))

    # --- wiring ---------------------------------------------------------------

    def read_queue_from(self, source: Callable[[], QueueFigures | None]) -> None:
        """Where the queue gauges come from (a cache, never storage itself)."""
        self._queue = source

    def read_breakers_from(self, source: Callable[[], Iterable[BreakerView]]) -> None:
        self._breakers = source

    def exposition(self) -> bytes:
        """The text format of everything, workers included."""
        return generate_latest(self.registry)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, metric.labels(*labels))
        return child

    # --- hooks ------------------------------------------------------------------

    def session_opened(self) -> None:
        self._sessions.inc()

    def session_closed(self) -> None:
        self._sessions.dec()

    def smtp_refused(self, stage: str, code: int, client_ip: str = "") -> None:
        self._child(self._refused, stage, str(code)).inc()
        what = f"{stage.upper()} {code}"
        self.recent.append(Refusal(at=time.time(), what=what, client_ip=client_ip))

    def mail(
        self,
        mode: str,
        error: int | None,
        *,
        request_id: str = "",
        account: str | None = None,
        client_ip: str = "",
    ) -> None:
        result = "ok" if error is None else f"error_{error}"
        self._child(self._mails, mode, result).inc()
        if error is not None:
            self.recent.append(
                Refusal(
                    at=time.time(),
                    what=f"ERROR = {error}",
                    mode=mode,
                    request_id=request_id,
                    account=account or "",
                    client_ip=client_ip,
                )
            )

    def mail_tempfail(self) -> None:
        self._child(self._mails, "", "tempfail").inc()

    def attempt(self, provider: str | None, outcome: str, seconds: float, count: int = 1) -> None:
        name = provider or ""
        self._child(self._attempts, name, outcome).inc(count)
        if provider is None:
            return
        if outcome in ("sent", "temporary", "permanent"):
            self._child(self._attempt_seconds, name).observe(seconds)
        act = self.activity.get(name)
        if act is None:
            act = self.activity[name] = ProviderActivity()
        if outcome == "sent":
            act.last_success = time.time()
            act.sent += count
            act.count_sent(act.last_success, count)
        elif outcome in ("temporary", "permanent"):
            act.last_error = time.time()
            act.last_error_kind = outcome
            act.errors += count

    def transition(self, provider: str | None, old: str, new: str, count: int = 1) -> None:
        self._child(self._transitions, old, new, provider or "").inc(count)

    def accepted(self, provider: str, seconds: float) -> None:
        self._child(self._accepted, provider).observe(max(0.0, seconds))

    def rate_wait(self, provider: str, seconds: float) -> None:
        self._child(self._rate_waits, provider).inc()
        self._child(self._rate_wait_seconds, provider).inc(seconds)

    def reply(self, outcome: str) -> None:
        self._child(self._replies, outcome).inc()

    def commit(self, seconds: float) -> None:
        self._commit.observe(seconds)

    # --- workers ----------------------------------------------------------------

    def snapshot(self, pid: int) -> bytes:
        """This process's forwarded figures as one datagram payload (JSON)."""
        samples: list[list[Any]] = []
        for family in self.local.collect():
            if family.name not in FORWARDED:
                continue
            for s in family.samples:
                samples.append([s.name, sorted(s.labels.items()), s.value])
        refusals = [r.to_json() for r in self.recent]
        return json.dumps({"pid": pid, "samples": samples, "recent": refusals}).encode()

    def absorb(self, index: int, payload: bytes) -> None:
        """Take a worker's snapshot; a new pid for ``index`` retires the old one's counters."""
        try:
            raw = json.loads(payload)
            pid = int(raw["pid"])
            samples = {
                (str(name), tuple((str(k), str(v)) for k, v in labels)): float(value)
                for name, labels, value in raw["samples"]
            }
            recent = [Refusal.from_json(r) for r in raw.get("recent", [])]
        except (ValueError, KeyError, TypeError):
            return
        old = self._workers.get(index)
        if old is not None and old.pid != pid:
            self._retire(old)
        self._workers[index] = _WorkerSnapshot(pid=pid, samples=samples, refusals=recent)

    def worker_gone(self, index: int) -> None:
        """Worker ``index`` exited: keep its counters, drop its gauges."""
        old = self._workers.pop(index, None)
        if old is not None:
            self._retire(old)

    def _retire(self, snap: _WorkerSnapshot) -> None:
        self.recent.extend(snap.refusals)  # shown until newer ones push them out
        for key, value in snap.samples.items():
            if key[0] != "mailbridge_smtp_sessions_open":
                self._retired[key] = self._retired.get(key, 0.0) + value

    def worker_samples(self) -> dict[_Key, float]:
        total = dict(self._retired)
        for snap in self._workers.values():
            for key, value in snap.samples.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def refusals(self) -> list[Refusal]:
        """The last refusals of this process and its workers, newest first."""
        every = list(self.recent)
        for snap in self._workers.values():
            every.extend(snap.refusals)
        every.sort(key=lambda r: r.at, reverse=True)
        return every[:_RECENT]

    def queue_figures(self) -> QueueFigures | None:
        return self._queue()

    def breakers(self) -> list[BreakerView]:
        return list(self._breakers())


class _Exported(Collector):
    """This process's registry, the workers' snapshots added, and the scrape-time gauges."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        extra = self._m.worker_samples()
        for family in self._m.local.collect():
            if family.name in FORWARDED and extra:
                yield _merged(family, extra)
            else:
                yield family
        yield from self._queue_families()
        yield from self._breaker_families()

    def _queue_families(self) -> Iterator[Metric]:
        figures = self._m.queue_figures()
        depth = GaugeMetricFamily(
            "mailbridge_queue_sms",
            "SMS rows by state, as storage counted them at most a few seconds ago.",
            labels=["state"],
        )
        oldest = GaugeMetricFamily(
            "mailbridge_queue_oldest_due_age_seconds",
            "Age of the oldest SMS that is due and still scheduled (0: none).",
        )
        waiting = GaugeMetricFamily(
            "mailbridge_reply_mails_waiting", "Reply mails queued or being sent."
        )
        if figures is not None:
            for state in _STATES:
                depth.add_metric([state], figures.by_state.get(state, 0))
            for state, n in sorted(figures.by_state.items()):
                if state not in _STATES:
                    depth.add_metric([state], n)
            age = figures.read_at - figures.oldest_due if figures.oldest_due is not None else 0.0
            oldest.add_metric([], max(0.0, age))
            waiting.add_metric([], figures.replies_waiting)
        yield depth
        yield oldest
        yield waiting

    def _breaker_families(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "mailbridge_provider_breaker_state",
            "Circuit breaker of each provider: 0 closed, 1 half-open, 2 open.",
            labels=["provider"],
        )
        for view in self._m.breakers():
            state.add_metric([view.name], BREAKER_VALUES.get(view.state, 2))
        yield state


def _merged(family: Metric, extra: Mapping[_Key, float]) -> Metric:
    """``family`` with the workers' values of the same samples added (new ones appended)."""
    out = Metric(family.name, family.documentation, family.type, family.unit)
    seen: set[_Key] = set()
    for s in family.samples:
        key: _Key = (s.name, tuple(sorted(s.labels.items())))
        seen.add(key)
        out.add_sample(s.name, s.labels, s.value + extra.get(key, 0.0), s.timestamp, s.exemplar)
    prefix = family.name
    for key, value in sorted(extra.items()):
        if key in seen or not key[0].startswith(prefix):
            continue
        out.add_sample(key[0], dict(key[1]), value)
    return out
