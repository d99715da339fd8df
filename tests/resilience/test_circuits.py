"""The one breaker and retry policy: circuits open on transient failures only, refuse while open,
let one probe through half-open, and close on its success; retries stop when the budget is
spent; every transition reaches metrics, the control socket's events and health."""

from __future__ import annotations

import asyncio

import pytest

from reautod.errors import UnavailableError, ValidationError
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.resilience.breaker import BreakerOpenError
from reautod.resilience.part import ResiliencePart
from reautod.resilience.retry import RetryBudget
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings, ServicePolicy
from reautod.topics import CircuitChanged


class Service:
    """A dependency that fails (transiently or for good) until told otherwise; counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: Exception | None = UnavailableError("connection refused")
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return "ok"


def settings(**policy: float) -> ResilienceSettings:
    return ResilienceSettings(redis=ServicePolicy(**{"failures": 3, "recovery_s": 0.5,
                                                     "retries": 0, **policy}))


async def test_opens_refuses_probes_once_and_closes() -> None:
    resilience, dep = Resilience(settings()), Service()
    for _ in range(3):
        with pytest.raises(UnavailableError):
            await resilience.call("redis", dep)
    assert resilience.state("redis") == "open"
    with pytest.raises(BreakerOpenError) as refused:
        await resilience.call("redis", dep)
    assert dep.calls == 3 and refused.value.retry_in_s > 0  # not attempted while open

    await asyncio.sleep(0.55)
    assert resilience.state("redis") == "half_open"
    dep.failure, dep.gate = None, asyncio.Event()
    probe = asyncio.create_task(resilience.call("redis", dep))
    await asyncio.sleep(0.01)
    with pytest.raises(BreakerOpenError):  # one probe at a time
        await resilience.call("redis", dep)
    dep.gate.set()
    assert await probe == "ok"
    assert resilience.state("redis") == "closed" and dep.calls == 4


async def test_a_failed_probe_opens_again() -> None:
    resilience, dep = Resilience(settings(failures=1)), Service()
    with pytest.raises(UnavailableError):
        await resilience.call("redis", dep)
    await asyncio.sleep(0.55)
    with pytest.raises(UnavailableError):
        await resilience.call("redis", dep)
    assert resilience.state("redis") == "open"


async def test_permanent_failures_neither_count_nor_retry() -> None:
    resilience, dep = Resilience(settings(failures=2, retries=3, backoff_base_s=0.001)), Service()
    dep.failure = ValidationError("the service said no")
    for _ in range(5):
        with pytest.raises(ValidationError):
            await resilience.call("redis", dep)
    assert dep.calls == 5 and resilience.state("redis") == "closed"


async def test_transient_failures_are_retried_within_the_budget() -> None:
    policy = {"failures": 1000, "retries": 2, "backoff_base_s": 0.001, "backoff_max_s": 0.001,
              "budget_ratio": 0.1, "budget_min_per_s": 0.0}
    resilience, dep = Resilience(settings(**policy)), Service()
    dep.failure = None
    assert await resilience.call("redis", dep) == "ok" and dep.calls == 1

    dep.failure, dep.calls = UnavailableError("down"), 0
    for _ in range(50):  # an outage: 50 requests
        with pytest.raises(UnavailableError):
            await resilience.call("redis", dep)
    # the budget's 10 starting tokens plus 0.1 per request, not 2 retries per request
    assert 50 < dep.calls <= 50 + 10 + 6


def test_the_budget_refills_by_requests_and_time() -> None:
    now = [0.0]
    budget = RetryBudget(0.5, 1.0, cap=2.0, clock=lambda: now[0])
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()
    budget.request()
    budget.request()
    assert budget.try_spend() and not budget.try_spend()
    now[0] += 1.0
    assert budget.try_spend()


async def test_transitions_reach_events_metrics_and_health() -> None:
    metrics, bus = Metrics(), EventBus()
    part = ResiliencePart(settings(failures=1), metrics, bus)
    events = bus.subscribe(["circuit"])
    assert await part.health() == (True, "0 circuits, all closed")

    with pytest.raises(UnavailableError):
        await part.resilience.call("redis", Service())
    opened = await asyncio.wait_for(events.get(), 1)
    assert opened.event == "circuit.changed"
    assert isinstance(opened.data, CircuitChanged)
    assert opened.data.circuit == "redis" and opened.data.state == "open"
    ok, detail = await part.health()
    assert not ok and detail.startswith("redis open (probe in")
    sample = metrics.registry.get_sample_value
    assert sample("reautod_circuits_not_closed", {"service": "redis"}) == 1
    assert sample("reautod_circuit_transitions_total", {"service": "redis", "state": "open"}) == 1

    await asyncio.sleep(0.55)
    dep = Service()
    dep.failure = None
    await part.resilience.call("redis", dep)
    changed = [(await asyncio.wait_for(events.get(), 1)).data for _ in range(2)]
    states = [c.state for c in changed if isinstance(c, CircuitChanged)]
    assert states == ["half_open", "closed"]
    assert sample("reautod_circuits_not_closed", {"service": "redis"}) == 0
    assert (await part.health())[0]


def test_unknown_services_are_refused() -> None:
    with pytest.raises(KeyError):
        Resilience().circuit("mongodb")


async def test_an_open_webhook_circuit_shows_in_health_without_failing_it() -> None:
    part = ResiliencePart(ResilienceSettings(webhooks=ServicePolicy(failures=1, recovery_s=60)),
                          Metrics(), EventBus())
    with pytest.raises(UnavailableError):
        await part.resilience.call("webhooks", Service(), key="crm")
    ok, detail = await part.health()
    assert ok and detail.startswith("webhooks:crm open (probe in")
