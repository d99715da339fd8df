"""Load shedding for the dialer: new outbound dials follow the box's measured voice-to-voice
latency and engine queues, not only a fixed call count.

`LoadGovernor` hears every turn (a `CallObserver`) and keeps the voice-to-voice latencies of the
last `window_s`; its p90 against the SLO decides how many dials a dialer tick may place:
- p90 over the SLO, or an engine queue at `max_queue` or deeper: none (held back);
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

from reautod.call_events import CallInfo, CallState, TurnRecord

AT_RISK = 0.8  # of the SLO: dials slow down to one a tick above this p90


@dataclass(frozen=True)
class Pace:
    """How many dials a tick may place, and why fewer than it asked for (None: all of them)."""

    allowed: int
    reason: str | None = None


class LoadGovernor:
    """See the module docstring; `queue_depths` reads the engines' queues (name -> depth)."""

    def __init__(self, *, slo_s: float, window_s: float, min_turns: int, max_queue: int,
                 queue_depths: Callable[[], Mapping[str, int]] = dict,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slo_s = slo_s
        self.window_s = window_s
        self.min_turns = min_turns
        self.max_queue = max_queue
        self.queue_depths = queue_depths
        self.clock = clock
        self._turns: collections.deque[tuple[float, float]] = collections.deque()

    def p90(self) -> float | None:
        """The voice-to-voice p90 of the window (nearest rank), or None with too few turns."""
        horizon = self.clock() - self.window_s
        while self._turns and self._turns[0][0] < horizon:
            self._turns.popleft()
        if len(self._turns) < self.min_turns:
            return None
        values = sorted(v for _, v in self._turns)
        return values[math.ceil(0.9 * len(values)) - 1]

    def pace(self, wanted: int) -> Pace:
        """How many of `wanted` dials may go now."""
        for engine, depth in sorted(self.queue_depths().items()):
            if depth >= self.max_queue:
                return Pace(0, f"the {engine} queue holds {depth} requests "
                               f"(max_engine_queue = {self.max_queue})")
        p90 = self.p90()
        if p90 is None or wanted <= 0:
            return Pace(wanted)
        if p90 > self.slo_s:
            return Pace(0, f"voice-to-voice p90 {p90:.2f} s is over the {self.slo_s:g} s SLO")
        if p90 > AT_RISK * self.slo_s and wanted > 1:
            return Pace(1, f"voice-to-voice p90 {p90:.2f} s is near the {self.slo_s:g} s SLO")
        return Pace(wanted)

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
