"""Load shedding for the dialer: new outbound dials follow the box's measured voice-to-voice
latency, engine queues and GPU memory, not only a fixed call count.

`LoadGovernor` hears every turn (a `CallObserver`) and keeps the voice-to-voice latencies of the
last `window_s`; with the other signals it decides how many dials a dialer tick may place:
- an engine queue at `max_queue` or deeper, GPU memory used over `max_gpu_memory` (a share of
  the fullest device), or a p90 over the SLO: none (held back);
- the live-call limit lowered after an engine ran out of memory (`AdmissionLimit`): no more
  than it leaves room for;
- an inbound call was shed in the last `inbound_reserve_s`: one slot is kept free for the
  lead calling back (callers outrank new outbound dials);
- p90 over `AT_RISK` of the SLO: at most one a tick (slowed down);
- otherwise what the slots and the calls-per-second cap allow.
With fewer than `min_turns` recent turns the p90 says nothing and only the queues count. Old
turns age out, so the pacing recovers by itself once replies are fast again. Calls in progress
are never touched; manual dials (`reautoctl dial`) are the operator's call and are not gated.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from reautod.call_events import CallInfo, CallState, TurnRecord

AT_RISK = 0.8  # of the SLO: dials slow down to one a tick above this p90


class Admission(Protocol):
    """The live-call limit now (reautod.resilience.memory.AdmissionLimit)."""

    def limit(self) -> int: ...

    def lowered(self) -> bool: ...


@dataclass(frozen=True)
class Pace:
    """How many dials a tick may place, and why fewer than it asked for (None: all of them)."""

    allowed: int
    reason: str | None = None


class LoadGovernor:
    """See the module docstring; `queue_depths` reads the engines' queues (name -> depth)."""

    def __init__(self, *, slo_s: float, window_s: float, min_turns: int, max_queue: int,
                 queue_depths: Callable[[], Mapping[str, int]] = dict,
                 max_gpu_memory: float = 1.0,
                 gpu_memory: Callable[[], float | None] = lambda: None,
                 admission: Admission | None = None, inbound_reserve_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slo_s = slo_s
        self.window_s = window_s
        self.min_turns = min_turns
        self.max_queue = max_queue
        self.queue_depths = queue_depths
        self.max_gpu_memory = max_gpu_memory
        self.gpu_memory = gpu_memory  # share of the fullest GPU's memory in use; None: no GPU
        self.admission = admission
        self.inbound_reserve_s = inbound_reserve_s
        self.clock = clock
        self._turns: collections.deque[tuple[float, float]] = collections.deque()
        self._inbound_shed_at: float | None = None

    def inbound_shed(self) -> None:
        """An inbound call was turned away: keep a slot for callers a while."""
        self._inbound_shed_at = self.clock()

    def reserving(self) -> bool:
        """Whether a slot is being kept free for inbound callers now."""
        return (self._inbound_shed_at is not None
                and self.clock() - self._inbound_shed_at < self.inbound_reserve_s)

    def p90(self) -> float | None:
        """The voice-to-voice p90 of the window (nearest rank), or None with too few turns."""
        horizon = self.clock() - self.window_s
        while self._turns and self._turns[0][0] < horizon:
            self._turns.popleft()
        if len(self._turns) < self.min_turns:
            return None
        values = sorted(v for _, v in self._turns)
        return values[math.ceil(0.9 * len(values)) - 1]

    def pace(self, wanted: int, active: int = 0) -> Pace:
        """How many of `wanted` dials may go now, with `active` calls of the box's live."""
        for engine, depth in sorted(self.queue_depths().items()):
            if depth >= self.max_queue:
                return Pace(0, f"the {engine} queue holds {depth} requests "
                               f"(max_engine_queue = {self.max_queue})")
        used = self.gpu_memory()
        if used is not None and used > self.max_gpu_memory:
            return Pace(0, f"GPU memory {used:.0%} used (max_gpu_memory = "
                           f"{self.max_gpu_memory:.0%})")
        room = self._room(wanted, active)
        if room is not None and room[0] < wanted:
            return Pace(max(0, room[0]), room[1])
        p90 = self.p90()
        if p90 is None or wanted <= 0:
            return Pace(wanted)
        if p90 > self.slo_s:
            return Pace(0, f"voice-to-voice p90 {p90:.2f} s is over the {self.slo_s:g} s SLO")
        if p90 > AT_RISK * self.slo_s and wanted > 1:
            return Pace(1, f"voice-to-voice p90 {p90:.2f} s is near the {self.slo_s:g} s SLO")
        return Pace(wanted)

    def _room(self, wanted: int, active: int) -> tuple[int, str] | None:
        """Dials the lowered limit and the inbound reserve leave room for, and why."""
        limit = self.admission.limit() if self.admission is not None else None
        room: tuple[int, str] | None = None
        if self.admission is not None and limit is not None and self.admission.lowered():
            room = (limit - active, f"live-call limit lowered to {limit} after an engine ran "
                                    "out of memory")
        if self.reserving():
            free = limit - active - 1 if limit is not None else wanted - 1
            room = (free, "a slot is kept for inbound callers (one was turned away in the last "
                          f"{self.inbound_reserve_s:g} s)")
        return room

    # -- CallObserver: only turns matter ---------------------------------------------------------

    def on_turn(self, turn: TurnRecord) -> None:
        latency = turn.latencies.get("voice_to_voice_s")
        if latency is not None:
            self._turns.append((self.clock(), latency))

    def on_call_started(self, info: CallInfo) -> None:
        return None

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        return None

    def on_call_state(self, call_id: str, state: CallState) -> None:
        return None

    def on_dtmf(self, call_id: str, digit: str) -> None:
        return None

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        return None
