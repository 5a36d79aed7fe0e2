"""One provider as the dispatcher sees it: a lane with its limits, its health and its calls.

A :class:`Lane` holds a provider with its ``concurrency`` (a semaphore),
``rate_per_s`` (a :class:`~mailbridge.delivery.ratelimit.TokenBucket` on the
clock's monotonic time), circuit breaker and ``max_batch``. :func:`build_lanes`
makes them from the settings (carrying breaker state over a reload);
:func:`call` sends one batch and turns every way it can fail into a
:class:`~mailbridge.errors.ProviderError` for the whole batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mailbridge.core.records import SmsJob
from mailbridge.core.routing import CircuitBreaker
from mailbridge.delivery.clock import Clock
from mailbridge.delivery.ratelimit import TokenBucket
from mailbridge.errors import ProviderError, TemporaryProviderError
from mailbridge.log import get_logger
from mailbridge.models import Format
from mailbridge.providers.base import Outbound, Provider, SendResult
from mailbridge.settings import ProviderSettings, Settings

__all__ = ["Lane", "build_lanes", "call", "provider_settings"]

#: Extra seconds after a provider's own timeouts before a send is abandoned as stuck.
_STUCK_MARGIN_S = 5.0

_log = get_logger("mailbridge.dispatcher")


@dataclass(slots=True, kw_only=True)
class Lane:
    """One provider with its limits and health."""

    name: str
    provider: Provider
    formats: frozenset[Format]
    semaphore: asyncio.Semaphore
    bucket: TokenBucket
    breaker: CircuitBreaker
    max_batch: int
    deadline_s: float
    active: int = 0
    retired: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def provider_settings(settings: Settings, name: str) -> ProviderSettings:
    """The ``[[provider]]`` section named ``name`` (defaults when there is none)."""
    for conf in settings.providers:
        if conf.name == name:
            return conf
    return ProviderSettings(name=name, type="")


def build_lanes(
    providers: Mapping[str, Provider],
    settings: Settings,
    clock: Clock,
    previous: Mapping[str, Lane] | None = None,
) -> dict[str, Lane]:
    """A lane per provider; a provider of ``previous`` keeps its breaker (new limits)."""
    confs = {conf.name: conf for conf in settings.providers}
    routing = settings.routing
    lanes: dict[str, Lane] = {}
    for name, provider in providers.items():
        conf = confs.get(name) or ProviderSettings(name=name, type="")
        old = previous.get(name) if previous else None
        breaker = CircuitBreaker(failures=routing.breaker_failures, reset_s=routing.breaker_reset_s)
        if old is not None:
            breaker = old.breaker
            breaker.failures = max(1, routing.breaker_failures)
            breaker.reset_s = routing.breaker_reset_s
        lanes[name] = Lane(
            name=name,
            provider=provider,
            formats=frozenset(provider.formats),
            semaphore=asyncio.Semaphore(max(1, conf.concurrency)),
            bucket=TokenBucket(conf.rate_per_s, now=clock.monotonic()),
            breaker=breaker,
            max_batch=max(1, provider.max_batch),
            deadline_s=conf.timeout_s + conf.connect_timeout_s + _STUCK_MARGIN_S,
        )
    return lanes


async def call(
    lane: Lane, jobs: Sequence[SmsJob], clock: Clock
) -> tuple[list[SendResult], ProviderError | None, float]:
    """Send ``jobs`` as one batch: (a result per job, the whole batch's error, milliseconds)."""
    batch = [
        Outbound(
            sms_id=job.sms_id,
            request_id=job.request_id,
            recipient=job.recipient,
            text=job.text,
            sender=job.sender,
            format=job.format,
            subject=job.subject,
            voice=job.voice,
            param=job.param,
        )
        for job in jobs
    ]
    whole: ProviderError | None = None
    started = clock.monotonic()
    try:
        async with asyncio.timeout(lane.deadline_s):
            results = list(await lane.provider.send(batch))
        if len(results) != len(batch):
            raise TemporaryProviderError(
                f"{lane.name}: {len(results)} results for {len(batch)} SMS"
            )
    except ProviderError as exc:
        whole = exc
    except TimeoutError:
        whole = TemporaryProviderError(f"{lane.name}: send stuck past {lane.deadline_s:g} s")
    except Exception as exc:
        _log.exception("provider adapter failed", provider=lane.name)
        whole = TemporaryProviderError(f"{lane.name}: adapter error ({type(exc).__name__})")
    duration_ms = (clock.monotonic() - started) * 1000.0
    if whole is not None:
        results = [whole] * len(batch)
    return results, whole, duration_ms
