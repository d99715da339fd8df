"""A browser (or `reautoctl talk`) over WebRTC as a call's media (pipeline.media).

pipecat's SmallWebRTC transport carries the audio: aiortc decodes the caller's Opus and pipecat
resamples it to the call's 8 kHz; agent audio goes out through an aiortc track that aiortc
paces and encodes. Only audio: no video transceiver is ever read, so pipecat's OpenCV path
(its `webrtc` extra) is never imported.

Playback truth: pipecat's output writes an agent frame into the outgoing track and waits until
the track has taken it for sending, and hands a PlaybackMarkFrame over only after the audio
before it was written; the mark is then echoed upstream at once. An interruption drops what the
output had queued, marks included, so a pending mark never comes back as played.

The caller hangs up by closing the peer connection or with a `{"type": "hangup"}` message on
the data channel (the page sends it when Hang up is pressed); what the caller should see (the
transcript) goes the other way on the same channel (webrtc.feed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import (
    SmallWebRTCInputTransport,
    SmallWebRTCOutputTransport,
    SmallWebRTCTransport,
)
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from reautod.call_recording import CallAudioSink
from reautod.pipeline.frames import MarkEchoFrame, PlaybackMarkFrame
from reautod.pipeline.media import MediaFormat, MediaHooks
from reautod.telephony.stream import CloseCode
from reautod.webrtc.signalling import CHANNEL_MESSAGE, ClosedMessage, HangupMessage, Transport

# 8 kHz like a phone call: the shared VAD batches 8 kHz windows (pipeline.vad), and the caller
# hears what a phone lead hears. 20 ms frames: WebRTC's own packet size.
WEBRTC_FORMAT = MediaFormat(sample_rate=8000, out_frame_ms=20)
CLOSE_TIMEOUT_S = 2.0
CLOSED_MESSAGE_S = 0.2  # for the caller's "closed" message to leave before the connection goes
CONNECT_TIMEOUT_S = 20.0  # from the answer to a working connection (ICE, DTLS)


class _TappedInput(SmallWebRTCInputTransport):
    """pipecat's WebRTC input, handing each caller frame to the call's recording too."""

    sink: CallAudioSink | None = None

    async def push_audio_frame(self, frame: InputAudioRawFrame) -> None:
        if self.sink is not None:
            self.sink.caller(frame.audio)
        await super().push_audio_frame(frame)


class _MarkingOutput(SmallWebRTCOutputTransport):
    """pipecat's WebRTC output: echoes playback marks once the audio before them went out,
    records and reports every agent frame."""

    sink: CallAudioSink | None = None
    hooks: MediaHooks | None = None
    connected: asyncio.Event | None = None

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        # the outgoing track exists once the peer is connected: audio written before would be
        # dropped, and the greeting's mark echoed as heard
        if self.connected is not None:
            await self.connected.wait()
        written = await super().write_audio_frame(frame)
        if written:
            if self.hooks is not None:
                self.hooks.audio_sent(time.monotonic())
            if self.sink is not None:
                self.sink.agent(frame.audio)
        return written

    async def write_transport_frame(self, frame: Frame) -> None:
        # pipecat hands over the frames of the audio queue it has no use of, in order, once
        # the audio before them was written into the outgoing track
        if isinstance(frame, PlaybackMarkFrame):
            await self.push_frame(MarkEchoFrame(mark_name=frame.mark_name),
                                  FrameDirection.UPSTREAM)


class _AudioOnlyTransport(SmallWebRTCTransport):
    def __init__(self, connection: SmallWebRTCConnection, params: TransportParams,
                 call_id: str) -> None:
        super().__init__(connection, params)
        self._input = _TappedInput(self._client, params, name=f"webrtc-in-{call_id}")
        self._output = _MarkingOutput(self._client, params, name=f"webrtc-out-{call_id}")
        self.tapped_input: _TappedInput = self._input
        self.marking_output: _MarkingOutput = self._output


class WebRTCMedia:
    """CallMedia over one peer connection whose offer was answered (`connection.initialize`)."""

    format = WEBRTC_FORMAT

    def __init__(self, connection: SmallWebRTCConnection, call_id: str,
                 transport: Transport = "webrtc") -> None:
        self.connection = connection
        self.call_id = call_id
        self._transport: Transport = transport
        self._stream_id = f"webrtc-{uuid.uuid4().hex[:16]}"
        self._warnings: dict[str, int] = {}
        self._closed = False
        self._connected = asyncio.Event()
        self._connect_timer: asyncio.TimerHandle | None = None

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def stream_id(self) -> str:
        return self._stream_id

    @property
    def carrier_call_id(self) -> str | None:
        return None

    @property
    def input_warnings(self) -> dict[str, int]:
        return self._warnings

    def processors(self, hooks: MediaHooks,
                   sink: CallAudioSink | None) -> tuple[FrameProcessor, FrameProcessor]:
        params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=WEBRTC_FORMAT.sample_rate,
            audio_out_enabled=True,
            audio_out_sample_rate=WEBRTC_FORMAT.sample_rate,
            audio_out_10ms_chunks=WEBRTC_FORMAT.out_frame_ms // 10,
            audio_out_end_silence_secs=0,
        )
        transport = _AudioOnlyTransport(self.connection, params, self.call_id)
        media_in, media_out = transport.tapped_input, transport.marking_output
        media_in.sink = sink
        media_out.sink, media_out.hooks = sink, hooks
        media_out.connected = self._connected

        def never_connected() -> None:
            if not self._connected.is_set():
                hooks.ended("no_media", CloseCode.NORMAL)

        self._connect_timer = asyncio.get_running_loop().call_later(CONNECT_TIMEOUT_S,
                                                                    never_connected)

        @transport.event_handler("on_client_connected")
        async def _connected(_transport: Any, _client: Any) -> None:
            self._connected.set()

        @transport.event_handler("on_client_disconnected")
        async def _gone(_transport: Any, _client: Any) -> None:
            hooks.ended("peer_closed", CloseCode.NORMAL)

        @transport.event_handler("on_app_message")
        async def _message(_transport: Any, message: Any, _sender: Any) -> None:
            if _is_hangup(message):
                hooks.ended("caller_hung_up", CloseCode.NORMAL)
            else:
                self._warnings["unknown_message"] = self._warnings.get("unknown_message", 0) + 1

        return media_in, media_out

    def send(self, message: BaseModel) -> None:
        """Tell the caller's page something on the data channel (queued until it opens): one
        of the channel's message models (`webrtc/signalling.py`)."""
        if not self._closed:
            self.connection.send_app_message(message.model_dump(mode="json"))

    async def close(self, code: int, reason: str) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # the peer may be gone already; nothing to save
            self.connection.send_app_message(
                ClosedMessage(reason=reason[:120]).model_dump(mode="json"))
            if self._connected.is_set():
                await asyncio.sleep(CLOSED_MESSAGE_S)
            await asyncio.wait_for(self.connection.disconnect(), CLOSE_TIMEOUT_S)


def _is_hangup(message: Any) -> bool:
    """Whether a message from the caller's page is a `HangupMessage`."""
    try:
        return isinstance(CHANNEL_MESSAGE.validate_python(message), HangupMessage)
    except PydanticValidationError:
        return False
