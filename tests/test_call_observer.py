"""The daemon's call sink: every pipeline callback reaches the store observer, the event bus,
metrics and the session store, and nothing it publishes is refused by the bus."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reautod.call_observer import CallEventSink
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.pipeline.observer import CallInfo, CallState, TurnRecord
from reautod.sessions import MemorySessionStore


@dataclass
class StoreSide:
    """Implements CallObserver and records what reached it."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def on_call_started(self, info: CallInfo) -> None:
        self.calls.append(("started", info.call_id))

    def on_turn(self, turn: TurnRecord) -> None:
        self.calls.append(("turn", turn.index))

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        self.calls.append(("barge_in", heard_text))

    def on_call_state(self, call_id: str, state: CallState) -> None:
        self.calls.append(("state", state))

    def on_dtmf(self, call_id: str, digit: str) -> None:
        self.calls.append(("dtmf", digit))

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self.calls.append(("ended", reason))


async def test_every_callback_fans_out() -> None:
    bus, metrics, store, sessions = EventBus(), Metrics(), StoreSide(), MemorySessionStore()
    sink = CallEventSink(bus, metrics, store, sessions)
    sub = bus.subscribe()
    now = datetime.now(UTC)
    info = CallInfo("c1", "MZ1", "CA1", "Jane Doe", "solar", "outbound", CallState.LISTENING, now)
    sink.on_call_started(info)
    sink.on_call_state("c1", CallState.SPEAKING)
    turn = TurnRecord("c1", 1, "caller", "hello", 0.9, now, now,
                      latencies={"stt_s": 0.12, "voice_to_voice_s": 0.3})
    sink.on_turn(turn)
    sink.on_barge_in("c1", "Hi Jane")
    sink.on_dtmf("c1", "9")
    await sink.close()
    assert (await sessions.get("c1"))["lead_name"] == "Jane Doe"
    assert metrics.live_calls._value.get() == 1
    sink.on_call_ended("c1", "hangup", 12.5)
    await sink.close()

    events = [(await sub.get()) for _ in range(6)]
    assert [e.event for e in events] == [
        "call.started", "call.state", "turn", "barge_in", "dtmf", "call.ended"]
    assert events[1].data == {"call_id": "c1", "state": "speaking"}
    assert events[4].data == {"call_id": "c1", "digit": "9"}
    assert [c[0] for c in store.calls] == ["started", "state", "turn", "barge_in", "dtmf", "ended"]
    assert await sessions.get("c1") is None
    assert metrics.live_calls._value.get() == 0
    assert metrics.turn_voice_to_voice_seconds._sum.get() > 0.29
