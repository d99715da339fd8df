"""The daemon's call event publisher: every pipeline callback reaches the event bus, metrics and
the session store, and nothing it publishes is refused by the bus."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from reautod.call_events import (
    CallInfo,
    CallState,
    CallStateEvent,
    CallStateSource,
    LiveCall,
    TurnRecord,
)
from reautod.call_observer import CallEventPublisher
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.sessions import MemorySessionStore
from reautod.topics import BargeIn, CallEnded, Dtmf, TurnEvent


async def test_every_callback_is_published() -> None:
    bus, metrics, sessions = EventBus(), Metrics(), MemorySessionStore()
    publisher = CallEventPublisher(bus, metrics, sessions)
    sub = bus.subscribe()
    now = datetime.now(UTC)
    info = CallInfo("c1", "MZ1", "CA1", "Jane Doe", "solar", "outbound", CallState.LISTENING, now)
    publisher.on_call_started(info)
    publisher.on_call_state("c1", CallState.SPEAKING)
    turn = TurnRecord("c1", 1, "caller", "hello", 0.9, now, now,
                      latencies={"stt_s": 0.12, "voice_to_voice_s": 0.3})
    publisher.on_turn(turn)
    publisher.on_barge_in("c1", "Hi Jane")
    publisher.on_dtmf("c1", "9")
    await publisher.close()
    assert (await sessions.get("c1"))["lead_name"] == "Jane Doe"
    assert metrics.live_calls._value.get() == 1
    publisher.on_call_ended("c1", "hangup", 12.5)
    await publisher.close()

    events = [(await sub.get()) for _ in range(6)]
    assert [e.event for e in events] == [
        "call.started", "call.state", "turn", "barge_in", "dtmf", "call.ended"]
    assert events[1].data == CallStateEvent(
        call_id="c1", state="speaking", source=CallStateSource.PIPELINE)
    assert events[2].data == TurnEvent(call_id="c1", index=1, speaker="caller", text="hello",
                                       confidence=0.9, started_at=now, ended_at=now,
                                       latencies={"stt_s": 0.12, "voice_to_voice_s": 0.3})
    assert events[3].data == BargeIn(call_id="c1", heard_text="Hi Jane")
    assert events[4].data == Dtmf(call_id="c1", digit="9")
    assert events[5].data == CallEnded(call_id="c1", reason="hangup", duration_s=12.5)
    assert await sessions.get("c1") is None
    assert metrics.live_calls._value.get() == 0
    assert metrics.turn_voice_to_voice_seconds._sum.get() > 0.29


def test_a_live_calls_wire_model_carries_every_field_of_call_info() -> None:
    """call.started and calls.list are `LiveCall`: a field added to CallInfo and not to the
    model would vanish from the wire (pydantic ignores unknown input)."""
    assert set(LiveCall.model_fields) == {f.name for f in dataclasses.fields(CallInfo)}


def test_a_turn_event_carries_every_field_of_the_turn_record() -> None:
    """`turn` is a `TurnEvent` built from the pipeline's `TurnRecord`: a field added to one and
    not the other would vanish from the wire or fail every turn."""
    assert set(TurnEvent.model_fields) == {f.name for f in dataclasses.fields(TurnRecord)}
