"""Where the operator sees the life of a call: the event bus, metrics and the session store.

Part of the composition root: the pipeline reports through its `CallObserver` Protocol and knows
nothing of the bus, Prometheus or Redis. The daemon fans each callback out (`ObserverFanOut`) to
the store's observer, to this one and to telephony. Every method is sync and cheap (the pipeline
calls it on the audio path); session-store writes are fire-and-forget tasks owned here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any

from reautod.call_events import (
    CallInfo,
    CallState,
    CallStateEvent,
    CallStateSource,
    TurnRecord,
)
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.sessions import SessionStore
from reautod.topics import BargeIn, CallEnded, Dtmf, TurnEvent

log = logging.getLogger(__name__)

# the pipeline's latency keys -> the metrics' turn stages
LATENCY_STAGES = {
    "stt_s": "transcript",
    "llm_first_token_s": "first_token",
    "tts_first_audio_s": "first_audio",
    "voice_to_voice_s": "voice_to_voice",
}


class CallEventPublisher:
    """A CallObserver that publishes each call's life as bus events, metrics and live-session
    snapshots."""

    def __init__(self, bus: EventBus, metrics: Metrics, sessions: SessionStore) -> None:
        self._bus = bus
        self._metrics = metrics
        self._sessions = sessions
        self._live: dict[str, CallInfo] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _snapshot(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as err:  # a dead Redis must not break calls; `reautoctl health` shows it
            log.warning("session store: %s", err)

    def on_call_started(self, info: CallInfo) -> None:
        self._live[info.call_id] = info
        self._metrics.live_calls.inc()
        self._bus.publish("call.started", info.result())
        self._snapshot(self._sessions.put(info.call_id, info.wire()))

    def on_turn(self, turn: TurnRecord) -> None:
        self._metrics.observe_turn(
            {LATENCY_STAGES[k]: v for k, v in turn.latencies.items() if k in LATENCY_STAGES}
        )
        self._bus.publish("turn", TurnEvent.model_validate(asdict(turn)))
        info = self._live.get(turn.call_id)
        if info is not None:
            self._snapshot(self._sessions.put(turn.call_id, info.wire()))

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        self._bus.publish("barge_in", BargeIn(call_id=call_id, heard_text=heard_text))

    def on_call_state(self, call_id: str, state: CallState) -> None:
        event = CallStateEvent(call_id=call_id, state=state.value, source=CallStateSource.PIPELINE)
        self._bus.publish(event.TOPIC, event)

    def on_dtmf(self, call_id: str, digit: str) -> None:
        self._bus.publish("dtmf", Dtmf(call_id=call_id, digit=digit))

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self._live.pop(call_id, None)
        self._metrics.live_calls.dec()
        self._metrics.call_ended("failed" if reason.startswith("failed") else "completed")
        self._bus.publish("call.ended",
                          CallEnded(call_id=call_id, reason=reason, duration_s=duration_s))
        self._snapshot(self._sessions.delete(call_id))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
