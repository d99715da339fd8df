"""Pacing: concurrency slots, the calls-per-second bucket, retries per outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reautod.campaigns.pacing import (
    ConcurrencyLimiter,
    Outcome,
    PacingError,
    RetryPolicy,
    RetryRule,
    TokenBucket,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def test_concurrency_per_campaign_and_per_box() -> None:
    limiter = ConcurrencyLimiter(per_box=3)
    assert limiter.try_acquire("a", 2) and limiter.try_acquire("a", 2)
    assert not limiter.try_acquire("a", 2)  # campaign full
    assert limiter.try_acquire("b", 5)
    assert not limiter.try_acquire("b", 5)  # box full
    limiter.release("a")
    assert limiter.try_acquire("b", 5)
    assert (limiter.active, limiter.active_for("a"), limiter.active_for("b")) == (3, 1, 2)
    limiter.release("a")
    with pytest.raises(PacingError, match="without acquire"):
        limiter.release("a")


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=60))
def test_concurrency_limits_hold_for_any_sequence(ops: list[tuple[str, bool]]) -> None:
    limiter = ConcurrencyLimiter(per_box=4)
    held: dict[str, int] = {}
    for campaign, acquire in ops:
        if acquire:
            if limiter.try_acquire(campaign, 2):
                held[campaign] = held.get(campaign, 0) + 1
        elif held.get(campaign):
            limiter.release(campaign)
            held[campaign] -= 1
        assert limiter.active == sum(held.values()) <= 4
        assert all(limiter.active_for(c) == n <= 2 for c, n in held.items())


def test_token_bucket() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=2, now=0.0)
    assert bucket.try_take(0.0) and bucket.try_take(0.0)
    assert not bucket.try_take(0.0)
    assert bucket.wait_s(0.0) == pytest.approx(0.5)
    assert not bucket.try_take(0.4)
    assert bucket.try_take(0.5)
    assert bucket.try_take(100.0) and bucket.try_take(100.0) and not bucket.try_take(100.0)


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=200))
def test_token_bucket_never_exceeds_rate(offsets: list[float]) -> None:
    rate, burst = 3.0, 2
    bucket = TokenBucket(rate, burst)
    taken = [t for t in sorted(offsets) if bucket.try_take(t)]
    for start in taken:
        window = [t for t in taken if start <= t < start + 1.0]
        assert len(window) <= burst + rate


def test_bucket_and_limiter_validation() -> None:
    with pytest.raises(PacingError):
        TokenBucket(0)
    with pytest.raises(PacingError):
        ConcurrencyLimiter(0)
    with pytest.raises(PacingError):
        ConcurrencyLimiter(1).try_acquire("a", 0)


def test_retry_per_outcome_with_backoff() -> None:
    policy = RetryPolicy(daily_cap=10)
    first = policy.next_attempt(Outcome.NO_ANSWER, [NOW], NOW)
    assert first.retry and first.not_before == NOW + timedelta(hours=2)
    second = policy.next_attempt(Outcome.NO_ANSWER, [NOW - timedelta(hours=3), NOW], NOW)
    assert second.not_before == NOW + timedelta(hours=4)
    busy = policy.next_attempt(Outcome.BUSY, [NOW], NOW)
    assert busy.not_before == NOW + timedelta(minutes=15)
    exhausted = policy.next_attempt(Outcome.FAILED, [NOW - timedelta(hours=1), NOW], NOW)
    assert not exhausted.retry and "2 of 2" in exhausted.reason
    for final in (Outcome.ANSWERED, Outcome.OPTED_OUT, Outcome.CANCELED):
        assert not policy.next_attempt(final, [NOW], NOW).retry


def test_daily_cap_pushes_the_retry() -> None:
    policy = RetryPolicy(rules={Outcome.BUSY: RetryRule(10, timedelta(minutes=5))}, daily_cap=3)
    times = [NOW - timedelta(hours=5), NOW - timedelta(hours=1), NOW]
    decision = policy.next_attempt(Outcome.BUSY, times, NOW)
    assert decision.retry and "daily cap" in decision.reason
    assert decision.not_before == NOW - timedelta(hours=5) + timedelta(hours=24)


@given(st.lists(st.integers(0, 60 * 48), min_size=1, max_size=8),
       st.sampled_from(sorted(Outcome, key=str)))
def test_retry_never_breaks_the_daily_cap(minutes_ago: list[int], outcome: Outcome) -> None:
    policy = RetryPolicy(daily_cap=3)
    times = [NOW - timedelta(minutes=m) for m in minutes_ago]
    decision = policy.next_attempt(outcome, times, NOW)
    if decision.retry:
        assert decision.not_before is not None and decision.not_before > NOW
        at = decision.not_before
        assert sum(at - timedelta(hours=24) < t <= at for t in times) < 3


def test_retry_policy_validation() -> None:
    with pytest.raises(PacingError, match="never retried"):
        RetryPolicy(rules={Outcome.ANSWERED: RetryRule(2, timedelta(hours=1))})
    with pytest.raises(PacingError):
        RetryRule(0, timedelta(hours=1))
    with pytest.raises(PacingError):
        RetryRule(2, timedelta(0))
    with pytest.raises(PacingError):
        RetryPolicy(daily_cap=0)
    with pytest.raises(PacingError, match="aware"):
        RetryPolicy().next_attempt(Outcome.BUSY, [], datetime(2026, 1, 1))
