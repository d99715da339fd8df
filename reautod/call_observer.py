"""Where the life of a call goes: the event bus, the write-behind queue, metrics, the session store.

Part of the composition root: the pipeline reports through its `CallObserver` Protocol and knows
nothing of the store, the bus or Prometheus; this class translates. Every method is sync and
cheap (the pipeline calls it on the audio path): store writes are queued, session-store writes
are fire-and-forget tasks owned here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.pipeline.observer import CallInfo, TurnRecord
from reautod.sessions import SessionStore
from reautod.store import CallEnded, CallStarted, WriteBehind
from reautod.store import TurnRecord as StoredTurn
from reautod.store.enums import CallDirection, CallStatus, CallTransport, Speaker

log = logging.getLogger(__name__)

# the pipeline's latency keys -> the metrics' turn stages
LATENCY_STAGES = {
    "stt_s": "transcript",
    "llm_first_token_s": "first_token",
    "tts_first_audio_s": "first_audio",
    "voice_to_voice_s": "voice_to_voice",
}
CALL_ID_NAMESPACE = uuid.UUID("7d1c2f4e-3b5a-4f0e-9a61-2f0f6c1d8e42")


def storage_call_id(call_id: str) -> uuid.UUID:
    """The store keys calls by UUID; simulator and test call ids may be any string."""
    try:
        return uuid.UUID(call_id)
    except ValueError:
        return uuid.uuid5(CALL_ID_NAMESPACE, call_id)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class CallEventSink:
    """The daemon's CallObserver."""

    def __init__(
        self,
        bus: EventBus,
        metrics: Metrics,
        writer: WriteBehind | None,
        sessions: SessionStore,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._writer = writer
        self._sessions = sessions
        self._live: dict[str, CallInfo] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _submit(self, record: Any) -> None:
        if self._writer is not None and not self._writer.submit(record):
            log.error("write-behind queue full: %s for a call was dropped", record.kind)

    def _session_io(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._guard_session(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard_session(coro: Any) -> None:
        try:
            await coro
        except Exception as err:  # a dead Redis must not break calls; health shows it
            log.warning("session store: %s", err)

    def on_call_started(self, info: CallInfo) -> None:
        self._live[info.call_id] = info
        self._metrics.live_calls.inc()
        self._bus.publish("call.started", info.wire())
        self._submit(
            CallStarted(
                call_id=storage_call_id(info.call_id),
                created_at=info.started_at,
                direction=CallDirection(info.direction),
                transport=CallTransport.TWILIO if info.call_sid else CallTransport.SIMULATED,
                status=CallStatus.IN_PROGRESS,
                call_sid=info.call_sid,
                stream_sid=info.stream_sid,
            )
        )
        self._session_io(self._sessions.put(info.call_id, info.wire()))

    def on_turn(self, turn: TurnRecord) -> None:
        self._bus.publish("turn", turn.wire())
        self._metrics.observe_turn(
            {LATENCY_STAGES[k]: v for k, v in turn.latencies.items() if k in LATENCY_STAGES}
        )
        lat = turn.latencies
        self._submit(
            StoredTurn(
                turn_id=uuid.uuid5(storage_call_id(turn.call_id), f"turn-{turn.index}"),
                call_id=storage_call_id(turn.call_id),
                seq=turn.index,
                speaker=Speaker.CALLER if turn.speaker == "caller" else Speaker.AGENT,
                text=turn.text,
                started_at=turn.started_at,
                ended_at=turn.ended_at,
                stt_confidence=turn.confidence,
                interrupted=turn.interrupted,
                stt_ms=_ms(lat.get("stt_s")),
                llm_first_token_ms=_ms(lat.get("llm_first_token_s")),
                tts_first_byte_ms=_ms(lat.get("tts_first_audio_s")),
                response_ms=_ms(lat.get("voice_to_voice_s")),
            )
        )
        info = self._live.get(turn.call_id)
        if info is not None:
            self._session_io(self._sessions.put(turn.call_id, info.wire()))

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        self._bus.publish("barge_in", {"call_id": call_id, "heard_text": heard_text})

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        info = self._live.pop(call_id, None)
        self._metrics.live_calls.dec()
        failed = reason.startswith("failed")
        self._metrics.call_ended("failed" if failed else "completed")
        self._bus.publish(
            "call.ended", {"call_id": call_id, "reason": reason, "duration_s": duration_s}
        )
        ended_at = datetime.now(UTC)
        self._submit(
            CallEnded(
                call_id=storage_call_id(call_id),
                ended_at=ended_at,
                status=CallStatus.FAILED if failed else CallStatus.COMPLETED,
                answered_at=info.started_at if info else ended_at - timedelta(seconds=duration_s),
                duration_ms=round(duration_s * 1000),
                disposition=reason[:200],
            )
        )
        self._session_io(self._sessions.delete(call_id))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
