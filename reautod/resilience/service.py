"""`Resilience`: the one object every part calls out through (breaker + retries per service).

    await resilience.call("twilio", lambda: client.hangup(sid))
    async with resilience.guard("webhooks", key=endpoint.name): ...   # breaker only

A service may have several circuits (`key`: one per webhook endpoint, so one dead receiver
does not stop the others); they share the service's policy and retry budget. Each attempt goes
through the circuit, the retries around it: an open circuit is never retried (its
BreakerOpenError is not transient), and a permanent failure neither counts against the circuit
nor is retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from reautod.errors import UnavailableError
from reautod.resilience.breaker import BreakerOpenError, Breakers, BreakerState
from reautod.resilience.retry import Classifier, RetryBudget, call_with_retries
from reautod.resilience.settings import SERVICES, ResilienceSettings, ServicePolicy

_T = TypeVar("_T")


def is_transient(err: BaseException) -> bool:
    """The default classifier: a dependency that could not be reached or timed out."""
    if isinstance(err, BreakerOpenError):
        return False
    return isinstance(err, UnavailableError | OSError | TimeoutError)


def service_of(circuit: str) -> str:
    """`webhooks:crm` -> `webhooks`."""
    return circuit.split(":", 1)[0]


class RetryCounter(Protocol):
    def retry_attempted(self, service: str, allowed: bool) -> None: ...


class Resilience:
    """Breakers and retry budgets of one daemon, by service."""

    def __init__(self, settings: ResilienceSettings | None = None, *,
                 breakers: Breakers | None = None, counter: RetryCounter | None = None) -> None:
        self.settings = settings or ResilienceSettings()
        self.breakers = breakers or Breakers()
        self.counter = counter
        self._budgets: dict[str, RetryBudget] = {}

    def policy(self, service: str) -> ServicePolicy:
        return self.settings.policy(service)

    def budget(self, service: str) -> RetryBudget:
        budget = self._budgets.get(service)
        if budget is None:
            policy = self.policy(service)
            budget = RetryBudget(policy.budget_ratio, policy.budget_min_per_s)
            self._budgets[service] = budget
        return budget

    @staticmethod
    def circuit(service: str, key: str | None = None) -> str:
        if service not in SERVICES:
            raise KeyError(f"unknown service {service!r}")
        return service if key is None else f"{service}:{key}"

    @asynccontextmanager
    async def guard(self, service: str, *, key: str | None = None,
                    transient: Classifier = is_transient) -> AsyncIterator[None]:
        """One attempt through the service's circuit; only transient failures count."""
        policy = self.policy(service)
        async with self.breakers.guard(self.circuit(service, key), failures=policy.failures,
                                       recovery_s=policy.recovery_s,
                                       permanent=lambda err: not transient(err)):
            yield

    async def call(self, service: str, fn: Callable[[], Awaitable[_T]], *,
                   key: str | None = None, transient: Classifier = is_transient,
                   retry_if: Classifier | None = None, retries: bool | int = True,
                   circuit: bool = True) -> _T:
        """`fn` through the circuit, its transient failures retried by the policy; `retry_if`
        decides instead which are retried (fewer: a request that may have taken effect; more:
        a conflict that does not count against the circuit), `retries` False retries none and
        a number overrides the policy's count; `circuit=False` retries without a circuit (a
        local resource, such as a SQLite file, is never down as a whole)."""
        async def attempt() -> _T:
            if not circuit:
                return await fn()
            async with self.guard(service, key=key, transient=transient):
                return await fn()

        policy = self.policy(service)
        if retries is False:
            return await attempt()
        if retries is not True:
            policy = policy.model_copy(update={"retries": int(retries)})

        def counted(allowed: bool) -> None:
            if self.counter is not None:
                self.counter.retry_attempted(service, allowed)

        return await call_with_retries(attempt, policy, self.budget(service),
                                       retry_if or transient, on_retry=counted)

    def state(self, service: str, key: str | None = None) -> BreakerState:
        return self.breakers.state(self.circuit(service, key))

    def states(self) -> dict[str, BreakerState]:
        return self.breakers.states()
