"""The resilience part: the daemon's one `Resilience` (breakers + retry budgets), with every
circuit's state in Prometheus metrics, on the control socket (`circuit.changed` events) and in
`reautoctl health` (the `circuits` check); and the degradation steps that are not circuits: the
live-call limit lowered after running out of memory (`admission.changed`), recordings stopped by
a full disk (`recording.stopped`), the load governor and inbound shedding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from reautod.call_recording import CallRecording
from reautod.engines.base import LanguageModel
from reautod.observability.events import EventBus
from reautod.resilience.breaker import Breakers, BreakerState
from reautod.resilience.inbound import AdmissionCheck, InboundShedding
from reautod.resilience.llm import GuardedLanguageModel
from reautod.resilience.memory import AdmissionLimit, MemoryGuardedEngines
from reautod.resilience.recording import AlarmedRecording
from reautod.resilience.service import Resilience, service_of
from reautod.resilience.settings import ResilienceSettings
from reautod.resilience.shedding import LoadGovernor
from reautod.topics import AdmissionChanged, CircuitChanged, RecordingStopped

log = logging.getLogger(__name__)


# services without which calls cannot be placed or answered well: their open circuit fails health
CALL_PATH = frozenset({"twilio", "llm", "database", "redis"})


class CircuitMetrics(Protocol):
    def circuit_changed(self, service: str, state: str, not_closed: int) -> None: ...
    def retry_attempted(self, service: str, allowed: bool) -> None: ...
    def recording_stopped(self, reason: str) -> None: ...
    def engine_out_of_memory(self, engine: str, limit: int) -> None: ...
    def admission_changed(self, limit: int) -> None: ...
    def inbound_shed(self, reason: str) -> None: ...


class ResiliencePart:
    """Owns the `Resilience` every part calls out through; reports its circuits."""

    def __init__(self, settings: ResilienceSettings, metrics: CircuitMetrics,
                 bus: EventBus) -> None:
        self.settings = settings
        self.metrics = metrics
        self.bus = bus
        self.breakers = Breakers(on_change=self._changed)
        self.resilience = Resilience(settings, breakers=self.breakers, counter=metrics)
        self.admission: AdmissionLimit | None = None  # admission_limit() builds them, in order
        self.governor: LoadGovernor | None = None

    def guarded_llm(self, llm: LanguageModel) -> GuardedLanguageModel:
        """The calls' language model behind the llm circuit (its `down` feeds the agents)."""
        return GuardedLanguageModel(llm, self.resilience, slow_s=self.settings.llm_slow_s)

    def admission_limit(self, configured: Callable[[], int]) -> AdmissionLimit:
        """The live-call limit (`configured`: calls.max_concurrent now), lowered after an engine
        ran out of memory; call manager and governor share it."""
        def changed(limit: int, reason: str) -> None:
            self.metrics.admission_changed(limit)
            event = AdmissionChanged(limit=limit, configured=configured(), reason=reason)
            self.bus.publish(event.TOPIC, event)

        self.admission = AdmissionLimit(configured, recover_s=self.settings.oom_recover_s,
                                        on_change=changed)
        self.metrics.admission_changed(configured())
        return self.admission

    def memory_guarded(self, engines: Any, live_calls: Callable[[], int]) -> MemoryGuardedEngines:
        """The pipeline's engines: running out of memory fails the turn, lowers the limit."""
        admission = self.admission
        if admission is None:
            raise RuntimeError("admission_limit() comes first")

        def out_of_memory(engine: str) -> None:
            limit = admission.out_of_memory(engine, live_calls())
            self.metrics.engine_out_of_memory(engine, limit)

        return MemoryGuardedEngines(engines, out_of_memory)

    def load_governor(self, queue_depths: Callable[[], Mapping[str, int]],
                      gpu_memory: Callable[[], float | None] = lambda: None) -> LoadGovernor:
        """The dialer's pacing by measured load (feed it turns as a CallObserver)."""
        s = self.settings
        self.governor = LoadGovernor(
            slo_s=s.slo_voice_to_voice_s, window_s=s.slo_window_s, min_turns=s.slo_min_turns,
            max_queue=s.max_engine_queue, queue_depths=queue_depths,
            max_gpu_memory=s.max_gpu_memory, gpu_memory=gpu_memory,
            admission=self.admission, inbound_reserve_s=s.inbound_reserve_s)
        return self.governor

    def inbound_shedding(self, manager: Callable[[], AdmissionCheck | None]) -> InboundShedding:
        """The voice webhook's gate: a caller the box cannot take hears the busy message."""
        if self.governor is None:
            raise RuntimeError("load_governor() comes first")
        return InboundShedding(manager, self.governor, self.metrics)

    def alarmed(self, recording: CallRecording) -> AlarmedRecording:
        """Recordings whose failure (disk full) is an alert; the call goes on."""
        return AlarmedRecording(recording, self._recording_stopped)

    def _recording_stopped(self, event: RecordingStopped) -> None:
        self.metrics.recording_stopped(event.reason)
        self.bus.publish(event.TOPIC, event)
        log.error("call %s: recording stopped (%s: %s); the call goes on unrecorded",
                  event.call_id, event.reason, event.detail)

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
