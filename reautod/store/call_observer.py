"""Persisting live calls: a `CallObserver` (the leaf contract `reautod.call_events`) that turns call
events into store records and submits them to the write-behind queue (sync, cheap, never blocks:
what the observer contract asks). The store never imports the real-time path.

Pipeline call ids are strings (a UUID hex from the dialer, or `sim-...`); the store keys calls
by UUID, so a non-UUID id maps to a stable uuid5. The same pipeline id always gives the same row,
so the placing path (reautod.outbound.placing, which queues the call row first, with campaign,
lead and then CallSid) and the pipeline (which adds the stream SID, turns and the end) write to
one call, both through the one write-behind queue.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.store.enums import CallDirection, CallStatus, CallTransport, Speaker
from reautod.store.records import CallEnded, CallStarted, CallStatusChanged, TurnSpoken
from reautod.store.writebehind import WriteBehind

log = logging.getLogger(__name__)

_CALL_NAMESPACE = uuid.UUID("6b1f3c1e-5d0a-4c55-9a44-2f1d3e7a9c01")


def call_uuid(call_id: str) -> uuid.UUID:
    """The store's id of a pipeline call id (itself when it is a UUID)."""
    try:
        return uuid.UUID(call_id)
    except ValueError:
        return uuid.uuid5(_CALL_NAMESPACE, call_id)


def turn_uuid(call: uuid.UUID, index: int) -> uuid.UUID:
    """Stable per (call, turn index): a turn reported twice is written once."""
    return uuid.uuid5(call, f"turn/{index}")


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


class StoreCallObserver:
    """CallObserver that records calls, turns and call ends through `WriteBehind`."""

    def __init__(self, write_behind: WriteBehind) -> None:
        self._wb = write_behind

    def on_call_started(self, info: CallInfo) -> None:
        call = call_uuid(info.call_id)
        simulated = info.call_id.startswith("sim-")
        self._wb.submit(
            CallStarted(
                call_id=call,
                created_at=info.started_at,
                direction=CallDirection(info.direction),
                transport=CallTransport.SIMULATED if simulated else CallTransport(info.transport),
                status=CallStatus.IN_PROGRESS,
                call_sid=info.call_sid,
                stream_sid=info.stream_sid,
                campaign_name=info.campaign,  # the dialer's row has the id already
            )
        )
        # The media stream starts when the call is answered: that is the answer time.
        self._wb.submit(
            CallStatusChanged(call, CallStatus.IN_PROGRESS, info.started_at, source="pipeline")
        )

    def on_turn(self, turn: TurnRecord) -> None:
        call = call_uuid(turn.call_id)
        lat = turn.latencies
        self._wb.submit(
            TurnSpoken(
                turn_id=turn_uuid(call, turn.index),
                call_id=call,
                seq=turn.index,
                speaker=Speaker(turn.speaker),
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

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Nothing to store: the interrupted agent turn arrives through `on_turn`."""

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """Nothing to store: conversational states are live-only; the status timeline is Twilio's."""

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """Nothing to store: the key reaches the agent's context (its reply is a turn), and an
        opt-out key is stored by telephony as a DNC entry and the call's outcome."""

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        ended = datetime.now(UTC)
        self._wb.submit(
            CallEnded(
                call_id=call_uuid(call_id),
                ended_at=ended,
                status=CallStatus.COMPLETED,
                disposition=reason,
                answered_at=ended - timedelta(seconds=duration_s),
                duration_ms=_ms(duration_s),
            )
        )
