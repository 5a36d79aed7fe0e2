"""The retry decision: backoff with full jitter, Retry-After, permanent failures, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.retry import (
    Fault,
    RetryAction,
    backoff_ceiling_s,
    decide,
    decide_reply,
    expires_at,
    next_step,
    reply_backoff_s,
)
from mailbridge.errors import PermanentProviderError, ProviderError, TemporaryProviderError
from mailbridge.models import SmsState
from mailbridge.settings import DeliverySettings

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = DeliverySettings(validity_s=86400, retry_first_s=2, retry_max_s=600)


def _const(value: float) -> Callable[[], float]:
    return lambda: value


class TestBackoffCeiling:
    @pytest.mark.parametrize(
        ("attempt", "ceiling"),
        [(0, 4.0), (1, 4.0), (2, 8.0), (3, 16.0), (8, 512.0), (9, 600.0), (50, 600.0)],
    )
    def test_doubles_then_caps(self, attempt: int, ceiling: float) -> None:
        """The ceiling starts at twice retry_first_s, doubles per attempt, stops at retry_max_s."""
        assert backoff_ceiling_s(attempt, SETTINGS) == ceiling

    def test_huge_attempt_does_not_overflow(self) -> None:
        """An absurd attempt number still gives the cap."""
        assert backoff_ceiling_s(10**9, SETTINGS) == 600.0


class TestDecide:
    @pytest.mark.parametrize(
        ("rng", "attempt", "gap"),
        [
            (0.5, 1, 2.0),  # mean of the first gap is retry_first_s
            (0.99, 1, 3.96),
            (0.0, 1, 0.2),  # floor: a tenth of retry_first_s
            (0.5, 3, 8.0),
            (0.999, 30, 599.4),
        ],
    )
    def test_temporary_retries_with_jitter(self, rng: float, attempt: int, gap: float) -> None:
        """A temporary error retries after rng x ceiling seconds (with the floor)."""
        d = decide(
            TemporaryProviderError("503"),
            attempt=attempt,
            now=T0,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(rng),
        )
        assert d.action is RetryAction.RETRY
        assert d.state is None
        assert d.at is not None
        assert (d.at - T0).total_seconds() == pytest.approx(gap)

    @pytest.mark.parametrize(
        ("retry_after", "gap"), [(30.0, 30.0), (0.5, 2.0), (3600.0, 3600.0), (None, 2.0)]
    )
    def test_retry_after_is_a_lower_bound(self, retry_after: float | None, gap: float) -> None:
        """Retry-After raises the gap (even past retry_max_s), never lowers it."""
        d = decide(
            TemporaryProviderError("429", retry_after_s=retry_after),
            attempt=1,
            now=T0,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert d.at is not None
        assert (d.at - T0).total_seconds() == pytest.approx(gap)

    @pytest.mark.parametrize("attempt", [1, 5, 100])
    def test_permanent_fails_at_once(self, attempt: int) -> None:
        """A permanent error fails whatever the attempt and time left."""
        d = decide(
            PermanentProviderError("credentials refused"),
            attempt=attempt,
            now=T0,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert d.action is RetryAction.FAILED
        assert d.state is SmsState.FAILED
        assert d.at is None

    def test_past_validity_expires(self) -> None:
        """An SMS past first_due + validity_s expires instead of retrying."""
        now = T0 + timedelta(seconds=86401)
        d = decide(
            TemporaryProviderError("timeout"),
            attempt=3,
            now=now,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert d.action is RetryAction.EXPIRED
        assert d.state is SmsState.EXPIRED

    def test_retry_landing_after_validity_expires_now(self) -> None:
        """A retry that would come after the validity ends expires the SMS at once."""
        short = DeliverySettings(validity_s=10, retry_first_s=2, retry_max_s=600)
        d = decide(
            TemporaryProviderError("429", retry_after_s=60),
            attempt=1,
            now=T0,
            first_due=T0,
            settings=short,
            rng=_const(0.5),
        )
        assert d.action is RetryAction.EXPIRED

    def test_plain_provider_error_is_temporary(self) -> None:
        """A bare ProviderError is treated as temporary."""
        d = decide(
            ProviderError("odd"), attempt=1, now=T0, first_due=T0, settings=SETTINGS, rng=_const(0)
        )
        assert d.action is RetryAction.RETRY

    def test_expires_at(self) -> None:
        """Validity counts from the request's first due time."""
        assert expires_at(T0, SETTINGS) == T0 + timedelta(days=1)

    @given(
        attempt=st.integers(min_value=1, max_value=200),
        draw=st.floats(min_value=0.0, max_value=0.999999),
        elapsed=st.floats(min_value=0.0, max_value=90000.0),
    )
    def test_retry_always_within_bounds(self, attempt: int, draw: float, elapsed: float) -> None:
        """Any retry is in the future, at most retry_max_s away, and before validity ends."""
        now = T0 + timedelta(seconds=elapsed)
        d = decide(
            TemporaryProviderError("x"),
            attempt=attempt,
            now=now,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(draw),
        )
        if d.action is RetryAction.RETRY:
            assert d.at is not None
            gap = (d.at - now).total_seconds()
            assert 0 < gap <= SETTINGS.retry_max_s
            assert d.at <= expires_at(T0, SETTINGS)
        else:
            assert d.action is RetryAction.EXPIRED


NOW = T0 + timedelta(seconds=100)
NEAR_END = T0 + timedelta(seconds=86390)  # 10 s of validity left
AT_END = T0 + timedelta(seconds=86399)  # 1 s left: a 2 s retry lands after it
PAST_END = T0 + timedelta(seconds=86401)


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


class TestNextStep:
    """The dispatcher's one decision, as a table: (fault, situation) -> (action, due)."""

    @pytest.mark.parametrize(
        ("fault", "now", "failover", "reopens", "tried", "action", "due"),
        [
            # permanent: failed at once, whatever the route offers
            (Fault.PERMANENT, NOW, True, _s(5), False, RetryAction.FAILED, None),
            # temporary: fail over now when another provider takes it ...
            (Fault.TEMPORARY, NOW, True, None, True, RetryAction.FAILOVER, _s(0)),
            # ... else the backoff (rng 0.5: 2 s); a paused provider is no reason to wait
            (Fault.TEMPORARY, NOW, False, None, True, RetryAction.RETRY, _s(2)),
            (Fault.TEMPORARY, NOW, False, _s(5), False, RetryAction.RETRY, _s(2)),
            # ... and never past validity, failover or not
            (Fault.TEMPORARY, PAST_END, True, None, True, RetryAction.EXPIRED, None),
            (Fault.TEMPORARY, AT_END, False, None, True, RetryAction.EXPIRED, None),
            # circuit open: wait for the first probe, if nothing was tried in this round
            (Fault.CIRCUIT_OPEN, NOW, False, _s(5), False, RetryAction.WAIT, _s(5)),
            (Fault.CIRCUIT_OPEN, NOW, False, _s(-5), False, RetryAction.WAIT, _s(0)),
            # failover is no option: the route has nobody healthy left
            (Fault.CIRCUIT_OPEN, NOW, True, _s(5), False, RetryAction.WAIT, _s(5)),
            # the round tried a provider already, or no breaker will reopen: the backoff
            (Fault.CIRCUIT_OPEN, NOW, False, _s(5), True, RetryAction.RETRY, _s(2)),
            (Fault.CIRCUIT_OPEN, NOW, False, None, False, RetryAction.RETRY, _s(2)),
            # the probe would come after validity: the backoff, or expiry
            (Fault.CIRCUIT_OPEN, NEAR_END, False, _s(20), False, RetryAction.RETRY, _s(2)),
            (Fault.CIRCUIT_OPEN, AT_END, False, _s(20), False, RetryAction.EXPIRED, None),
            (Fault.CIRCUIT_OPEN, PAST_END, False, _s(-5), False, RetryAction.EXPIRED, None),
            # provider unavailable: fail over, else wait for its breaker, else the backoff
            (Fault.PROVIDER_UNAVAILABLE, NOW, True, _s(10), True, RetryAction.FAILOVER, _s(0)),
            (Fault.PROVIDER_UNAVAILABLE, NOW, False, _s(10), True, RetryAction.WAIT, _s(10)),
            (Fault.PROVIDER_UNAVAILABLE, NOW, False, None, True, RetryAction.RETRY, _s(2)),
            (Fault.PROVIDER_UNAVAILABLE, NEAR_END, False, _s(20), True, RetryAction.RETRY, _s(2)),
            (Fault.PROVIDER_UNAVAILABLE, PAST_END, True, None, True, RetryAction.EXPIRED, None),
        ],
    )
    def test_table(
        self,
        fault: Fault,
        now: datetime,
        failover: bool,
        reopens: timedelta | None,
        tried: bool,
        action: RetryAction,
        due: timedelta | None,
    ) -> None:
        """Each row of the table in next_step's docstring."""
        error: ProviderError = (
            PermanentProviderError("refused")
            if fault is Fault.PERMANENT
            else TemporaryProviderError("503")
        )
        d = next_step(
            fault,
            error,
            attempt=1,
            now=now,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
            failover=failover,
            reopens_at=None if reopens is None else now + reopens,
            tried=tried,
        )
        assert d.action is action
        assert d.at == (None if due is None else now + due)
        expected_state = {
            RetryAction.FAILED: SmsState.FAILED,
            RetryAction.EXPIRED: SmsState.EXPIRED,
        }
        assert d.state is expected_state.get(action)

    def test_permanent_reason_is_the_error(self) -> None:
        """A refusal keeps the provider's words as its reason."""
        d = next_step(
            Fault.PERMANENT,
            PermanentProviderError("number blocked"),
            attempt=1,
            now=NOW,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert d.reason == "number blocked"

    def test_retry_after_holds_on_the_backoff(self) -> None:
        """Without failover the provider's Retry-After still sets the earliest retry."""
        d = next_step(
            Fault.TEMPORARY,
            TemporaryProviderError("429", retry_after_s=30),
            attempt=1,
            now=NOW,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(0.5),
        )
        assert (d.action, d.at) == (RetryAction.RETRY, NOW + _s(30))

    @given(
        attempt=st.integers(min_value=1, max_value=80),
        draw=st.floats(min_value=0.0, max_value=0.999),
        elapsed=st.floats(min_value=0.0, max_value=90000.0),
        fault=st.sampled_from([Fault.TEMPORARY, Fault.CIRCUIT_OPEN]),
    )
    def test_without_options_it_is_the_backoff(
        self, attempt: int, draw: float, elapsed: float, fault: Fault
    ) -> None:
        """No failover and no breaker to wait for: exactly what decide() says."""
        now = T0 + timedelta(seconds=elapsed)
        error = TemporaryProviderError("503")
        step = next_step(
            fault,
            error,
            attempt=attempt,
            now=now,
            first_due=T0,
            settings=SETTINGS,
            rng=_const(draw),
        )
        backoff = decide(
            error, attempt=attempt, now=now, first_due=T0, settings=SETTINGS, rng=_const(draw)
        )
        assert step == backoff


class TestReplyDecision:
    @pytest.mark.parametrize(
        ("attempt", "gap"),
        [(0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (9, 512.0), (10, 600.0), (10**6, 600.0)],
    )
    def test_doubles_without_jitter_then_caps(self, attempt: int, gap: float) -> None:
        """A reply waits retry_first_s, then twice as long each time, at most retry_max_s."""
        assert decide_reply(attempt=attempt, now=NOW, permanent=False, settings=SETTINGS) == (
            NOW + _s(gap)
        )
        assert reply_backoff_s(attempt, first_s=2, max_s=600) == gap

    @pytest.mark.parametrize("attempt", [1, 5, 40])
    def test_refused_recipient_waits_the_longest_gap(self, attempt: int) -> None:
        """A recipient the smarthost refused for good is tried again only after retry_max_s."""
        assert decide_reply(attempt=attempt, now=NOW, permanent=True, settings=SETTINGS) == (
            NOW + _s(600)
        )

    def test_a_reply_never_expires(self) -> None:
        """Long past any SMS validity a reply is still retried."""
        late = T0 + timedelta(days=30)
        assert decide_reply(attempt=3, now=late, permanent=False, settings=SETTINGS) == late + _s(8)
