"""Twilio's media stream as a call's media (pipeline.media): the WebSocket, the serializer, marks.

Twilio streams the caller as 8 kHz mu-law over the media WebSocket and plays what we send back;
its `mark` echoes are the playback truth, its `clear` drops what it had buffered. The transport
(pipeline.transport) paces agent audio; the serializer (pipeline.serializer) owns all of
Twilio's JSON. The stream's `start` event says who the call is with (`StartInfo`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import WebSocket
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from starlette.websockets import WebSocketState

from reautod.call_recording import CallAudioSink
from reautod.conversation import CallContext
from reautod.pipeline.media import MediaFormat, MediaHooks
from reautod.pipeline.serializer import TwilioMediaSerializer
from reautod.pipeline.transport import PacedWebsocketTransport
from reautod.telephony.stream import CloseCode

# Twilio plays 8 kHz mu-law, and caller audio stays at 8 kHz through the pipeline (Silero runs
# at 8 kHz): per-frame resampling was the biggest CPU cost per stream. Agent audio leaves in
# 40 ms media messages: Twilio plays any size in order, and every message costs a trip through
# the output transport, serializer and socket (bench/bench_streams.py).
TWILIO_FORMAT = MediaFormat(sample_rate=8000, out_frame_ms=40)
CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StartInfo:
    """What Twilio's `start` event told us about the call (validated)."""

    stream_sid: str
    call_sid: str | None
    call_id: str
    lead_name: str
    campaign: str | None
    goal: str | None
    direction: Literal["outbound", "inbound"]
    opening: str | None = None  # rendered by the dialer for its campaign (pipeline.opening)
    resume: bool = False  # continue the call from its checkpoint (reautod.recovery)

    def context(self) -> CallContext:
        """Who the call is with, for its conversation."""
        return CallContext(call_id=self.call_id, lead_name=self.lead_name,
                           campaign=self.campaign, goal=self.goal, direction=self.direction,
                           opening=self.opening)


class TwilioMedia:
    """CallMedia over one accepted Twilio media WebSocket whose `start` was read."""

    format = TWILIO_FORMAT
    transport: Literal["twilio"] = "twilio"

    def __init__(self, websocket: WebSocket, start: StartInfo,
                 input_warnings: dict[str, int] | None = None) -> None:
        self.websocket = websocket
        self.start = start
        self._warnings = dict(input_warnings or {})
        self.serializer: TwilioMediaSerializer | None = None

    @property
    def stream_id(self) -> str:
        return self.start.stream_sid

    @property
    def carrier_call_id(self) -> str | None:
        return self.start.call_sid

    @property
    def input_warnings(self) -> dict[str, int]:
        return self._warnings

    def processors(self, hooks: MediaHooks,
                   sink: CallAudioSink | None) -> tuple[FrameProcessor, FrameProcessor]:
        serializer = TwilioMediaSerializer(self.start.stream_sid, call_id=self.start.call_id,
                                           call_sid=self.start.call_sid, warnings=self._warnings)
        serializer.audio_sink = sink
        serializer.on_audio_sent = hooks.audio_sent
        serializer.on_ended = hooks.ended
        self.serializer = serializer
        transport = PacedWebsocketTransport(
            self.websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_in_sample_rate=TWILIO_FORMAT.sample_rate,
                audio_out_enabled=True,
                audio_out_sample_rate=TWILIO_FORMAT.sample_rate,
                audio_out_10ms_chunks=TWILIO_FORMAT.out_frame_ms // 10,
                audio_out_end_silence_secs=0,
                serializer=serializer,
                allowed_origins=[],  # Twilio sends no Origin; the upgrade validator guards
            ),
        )

        @transport.event_handler("on_client_disconnected")
        async def _gone(_transport: Any, _ws: Any) -> None:
            hooks.ended("socket_closed", CloseCode.NORMAL)

        return transport.input(), transport.output()

    async def close(self, code: int, reason: str) -> None:
        ws = self.websocket
        if ws.application_state == WebSocketState.CONNECTED and \
                ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the peer may already be gone; nothing to save
                await asyncio.wait_for(ws.close(code=code, reason=reason[:120]), CLOSE_TIMEOUT_S)
