"""Pacing: concurrency limits, a calls-per-second token bucket, and retries per outcome.

All pure and clock-driven (times are passed in), so the dialer decides and the tests check
without sleeping. The dialer owns one `ConcurrencyLimiter` and one `TokenBucket` per box.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from reautod.errors import ValidationError

DAY = timedelta(hours=24)


class PacingError(ValidationError):
    code = "pacing_invalid"


class ConcurrencyLimiter:
    """Live-call slots: at most `per_box` in all, and each campaign's own maximum."""

    def __init__(self, per_box: int) -> None:
        if per_box < 1:
            raise PacingError("max concurrent calls per box must be at least 1")
        self.per_box = per_box
        self._by_campaign: dict[str, int] = {}

    @property
    def active(self) -> int:
        return sum(self._by_campaign.values())

    def active_for(self, campaign_id: str) -> int:
        return self._by_campaign.get(campaign_id, 0)

    def try_acquire(self, campaign_id: str, campaign_max: int) -> bool:
        """Take a slot if both limits allow; the caller must `release` it when the call ends."""
        if campaign_max < 1:
            raise PacingError("a campaign's max concurrent calls must be at least 1")
        if self.active >= self.per_box or self.active_for(campaign_id) >= campaign_max:
            return False
        self._by_campaign[campaign_id] = self.active_for(campaign_id) + 1
        return True

    def release(self, campaign_id: str) -> None:
        current = self.active_for(campaign_id)
        if current <= 0:
            raise PacingError(f"release without acquire for campaign {campaign_id!r}")
        if current == 1:
            del self._by_campaign[campaign_id]
        else:
            self._by_campaign[campaign_id] = current - 1


class TokenBucket:
    """Calls-per-second cap: `rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate_per_s: float, burst: int = 1, *, now: float = 0.0) -> None:
        if not rate_per_s > 0:
            raise PacingError("calls per second must be positive")
        if burst < 1:
            raise PacingError("burst must be at least 1")
        self.rate = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def try_take(self, now: float) -> bool:
        """Take a token at monotonic time `now` (seconds) if one is available."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def available(self, now: float) -> int:
        """Whole tokens available at `now` (how many calls may start now)."""
        self._refill(now)
        return int(self._tokens)

    def wait_s(self, now: float) -> float:
        """Seconds until a token will be available (0 if one is)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate


class Outcome(StrEnum):
    """How a call attempt ended, as far as retries care."""

    NO_ANSWER = "no-answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    FAILED = "failed"
    ANSWERED = "answered"  # a conversation happened: never retried automatically
    OPTED_OUT = "opted-out"
    CANCELED = "canceled"


RETRYABLE = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.VOICEMAIL, Outcome.FAILED})


@dataclass(frozen=True)
class RetryRule:
    """Retries for one outcome: up to `max_attempts` calls in all, with exponential backoff."""

    max_attempts: int
    backoff: timedelta
    multiplier: float = 2.0
    max_backoff: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise PacingError("max attempts must be at least 1")
        if self.backoff <= timedelta(0) or self.max_backoff < self.backoff:
            raise PacingError("backoff must be positive and not above max backoff")
        if self.multiplier < 1:
            raise PacingError("backoff multiplier must be at least 1")

    def delay(self, attempts: int) -> timedelta:
        """Backoff after the `attempts`-th attempt (1-based)."""
        seconds = self.backoff.total_seconds() * self.multiplier ** max(0, attempts - 1)
        return min(timedelta(seconds=seconds), self.max_backoff)


def _default_rules() -> dict[Outcome, RetryRule]:
    return {
        Outcome.NO_ANSWER: RetryRule(4, timedelta(hours=2)),
        Outcome.BUSY: RetryRule(4, timedelta(minutes=15)),
        Outcome.VOICEMAIL: RetryRule(3, timedelta(hours=24), multiplier=1.0),
        Outcome.FAILED: RetryRule(2, timedelta(minutes=30)),
    }


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    not_before: datetime | None  # the earliest time for the next attempt (windows apply too)
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """Per-outcome retry rules plus a cap on attempts per lead in any 24 hours."""

    rules: dict[Outcome, RetryRule] = field(default_factory=_default_rules)
    daily_cap: int = 3

    def __post_init__(self) -> None:
        if self.daily_cap < 1:
            raise PacingError("daily attempt cap must be at least 1")
        unknown = set(self.rules) - RETRYABLE
        if unknown:
            raise PacingError(f"outcomes that are never retried: {sorted(unknown)}")

    def next_attempt(
        self, outcome: Outcome, attempt_times: Iterable[datetime], now: datetime
    ) -> RetryDecision:
        """After an attempt ended with `outcome`: retry, and not before when?

        `attempt_times` are all attempts for this lead so far (including the one just ended);
        the count of earlier attempts with any outcome is what `max_attempts` limits.
        """
        if now.tzinfo is None:
            raise PacingError("now must be timezone-aware")
        times = sorted(attempt_times)
        rule = self.rules.get(outcome)
        if rule is None:
            return RetryDecision(False, None, f"{outcome} is not retried")
        if len(times) >= rule.max_attempts:
            return RetryDecision(False, None, f"{len(times)} of {rule.max_attempts} attempts used")
        not_before = now + rule.delay(len(times))
        recent = [t for t in times if t > not_before - DAY]
        if len(recent) >= self.daily_cap:
            # The earliest moment the rolling 24 h holds fewer than `daily_cap` attempts.
            not_before = max(not_before, recent[len(recent) - self.daily_cap] + DAY)
            return RetryDecision(True, not_before, f"daily cap of {self.daily_cap} reached")
        return RetryDecision(True, not_before, f"retry after {rule.delay(len(times))}")
