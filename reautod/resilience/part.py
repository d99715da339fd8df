"""The resilience part: the daemon's one `Resilience` (breakers + retry budgets), with every
circuit's state in Prometheus metrics, on the control socket (`circuit.changed` events) and in
`reautoctl health` (the `circuits` check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from reautod.engines.base import LanguageModel
from reautod.observability.events import EventBus
from reautod.resilience.breaker import Breakers, BreakerState
from reautod.resilience.llm import GuardedLanguageModel
from reautod.resilience.service import Resilience, service_of
from reautod.resilience.settings import ResilienceSettings
from reautod.resilience.shedding import LoadGovernor
from reautod.topics import CircuitChanged

log = logging.getLogger(__name__)


# services without which calls cannot be placed or answered well: their open circuit fails health
CALL_PATH = frozenset({"twilio", "llm", "database", "redis"})


class CircuitMetrics(Protocol):
    def circuit_changed(self, service: str, state: str, not_closed: int) -> None: ...
    def retry_attempted(self, service: str, allowed: bool) -> None: ...


class ResiliencePart:
    """Owns the `Resilience` every part calls out through; reports its circuits."""

    def __init__(self, settings: ResilienceSettings, metrics: CircuitMetrics,
                 bus: EventBus) -> None:
        self.settings = settings
        self.metrics = metrics
        self.bus = bus
        self.breakers = Breakers(on_change=self._changed)
        self.resilience = Resilience(settings, breakers=self.breakers, counter=metrics)

    def guarded_llm(self, llm: LanguageModel) -> GuardedLanguageModel:
        """The calls' language model behind the llm circuit (its `down` feeds the agents)."""
        return GuardedLanguageModel(llm, self.resilience, slow_s=self.settings.llm_slow_s)

    def load_governor(self, queue_depths: Callable[[], Mapping[str, int]]) -> LoadGovernor:
        """The dialer's pacing by measured load (feed it turns as a CallObserver)."""
        s = self.settings
        return LoadGovernor(slo_s=s.slo_voice_to_voice_s, window_s=s.slo_window_s,
                            min_turns=s.slo_min_turns, max_queue=s.max_engine_queue,
                            queue_depths=queue_depths)

    def _changed(self, circuit: str, state: BreakerState) -> None:
        service = service_of(circuit)
        not_closed = sum(1 for name, s in self.breakers.states().items()
                         if service_of(name) == service and s != "closed")
        self.metrics.circuit_changed(service, state, not_closed)
        event = CircuitChanged(circuit=circuit, service=service, state=state,
                               retry_in_s=round(self.breakers.retry_in(circuit), 3))
        self.bus.publish("circuit.changed", event)
        (log.info if state == "closed" else log.warning)("circuit %s is %s", circuit,
                                                         state.replace("_", "-"))

    async def health(self) -> tuple[bool, str]:
        """Failing while a circuit calls cannot do without is open (CALL_PATH); the detail
        names every circuit not closed (a webhook receiver's open circuit shows there but does
        not fail `/healthz`: calls go on, its events wait in the outbox)."""
        states = self.breakers.states()
        trouble = {name: s for name, s in sorted(states.items()) if s != "closed"}
        if not trouble:
            return True, f"{len(states)} circuits, all closed"
        detail = ", ".join(
            f"{name} {state}" + (f" (probe in {self.breakers.retry_in(name):.0f} s)"
                                 if state == "open" else "")
            for name, state in trouble.items())
        failing = any(s == "open" and service_of(name) in CALL_PATH
                      for name, s in trouble.items())
        return not failing, detail
