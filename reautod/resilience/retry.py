"""Retry policies with a retry budget, on tenacity: the one way reautod retries a call out.

A retry is made only when (1) the failure is transient (the classifier says a retry may help),
(2) attempts are left, and (3) the service's `RetryBudget` has a token. The budget is a token
bucket: every first attempt adds `ratio` of a token, time adds `min_per_s`, a retry spends one.
While a service is healthy the budget is full and a lone blip is retried; when it is down,
every request fails and retries stop after the budget's few tokens, so an outage costs the
service at most (1 + ratio) times its normal load instead of (1 + retries) times.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_base,
    stop_after_attempt,
    wait_exponential_jitter,
)

from reautod.resilience.settings import ServicePolicy

_T = TypeVar("_T")
Classifier = Callable[[BaseException], bool]  # True: transient (a retry may help)


class RetryBudget:
    """Token bucket of retries for one service (see the module docstring)."""

    def __init__(self, ratio: float, min_per_s: float, *, cap: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.cap = cap
        self.clock = clock
        self._tokens = cap
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.cap, self._tokens + (now - self._at) * self.min_per_s)
        self._at = now

    def request(self) -> None:
        """A first attempt was made: it earns `ratio` of a retry."""
        self._refill()
        self._tokens = min(self.cap, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take a token for one retry; False when the budget is spent."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens


class _RetryIf(retry_base):
    """Tenacity's retry predicate: transient, and the budget allows it (counted either way)."""

    def __init__(self, transient: Classifier, budget: RetryBudget, attempts: int,
                 on_retry: Callable[[bool], None]) -> None:
        self.transient = transient
        self.budget = budget
        self.attempts = attempts
        self.on_retry = on_retry

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or not outcome.failed:
            return False
        err = outcome.exception()
        if (err is None or not self.transient(err)
                or retry_state.attempt_number >= self.attempts):
            return False
        allowed = self.budget.try_spend()
        self.on_retry(allowed)
        return allowed


async def call_with_retries(fn: Callable[[], Awaitable[_T]], policy: ServicePolicy,
                            budget: RetryBudget, transient: Classifier, *,
                            on_retry: Callable[[bool], None] = lambda _allowed: None) -> _T:
    """Run `fn` (one attempt each call) under `policy`; the last failure is raised as it was."""
    budget.request()
    retrying = AsyncRetrying(
        retry=_RetryIf(transient, budget, policy.retries + 1, on_retry),
        stop=stop_after_attempt(policy.retries + 1),
        wait=wait_exponential_jitter(multiplier=policy.backoff_base_s, max=policy.backoff_max_s,
                                     jitter=policy.backoff_base_s),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity reraises the last failure")
