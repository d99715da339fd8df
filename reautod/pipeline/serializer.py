"""Twilio Media Streams wire format for one call, hardened for what real sockets send.

Built on pipecat's TwilioFrameSerializer (it owns mu-law and resampling: once per direction) with
auto hang-up off: reautod owns hang-up. All of Twilio's JSON is written and read here: media,
`clear` (for an InterruptionFrame), `mark` (for a PlaybackMarkFrame), and the echoes, keys and
`stop` that come back. Pipecat's deserializer trusts its input, so ours validates every message
first; bad input is ignored with a counted warning, and a socket that keeps sending garbage, or
one huge frame, ends the call with a reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.audio.utils import ulaw_to_pcm
from pipecat.frames.frames import (
    AudioRawFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer

from reautod.call_recording import CallAudioSink
from reautod.pipeline.frames import MarkEchoFrame, PlaybackMarkFrame
from reautod.telephony.stream import CloseCode

log = logging.getLogger(__name__)

# Twilio's frames are a few hundred bytes; the HTTP server caps messages harder (ws_max_size).
MAX_MESSAGE_BYTES = 64 * 1024
MAX_BAD_MESSAGES = 200  # malformed messages tolerated per call before it is closed
# Caller audio goes down the pipeline in 40 ms frames (two of Twilio's usual 20 ms messages):
# every frame costs a trip through pipecat's processors and queues, and halving their number
# saved ~20% of a listening call's CPU (bench/bench_streams.py, 50 calls). Silero scores 32 ms
# windows, so a window completes at most 20 ms later than with 20 ms frames (10 ms on average).
INBOUND_FRAME_S = 0.04


class InputWarnings:
    """Counts of ignored bad input for one call, by kind."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts: dict[str, int] = counts if counts is not None else {}

    def add(self, kind: str, call_id: str) -> int:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] in (1, 10, 100):  # log the first of each kind, then sparsely
            log.warning("call %s: ignoring bad media input (%s, %d so far)", call_id, kind,
                        self.counts[kind])
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


def decode_message(data: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Parse one socket message: (message, None) or (None, warning kind)."""
    if len(data) > MAX_MESSAGE_BYTES:
        return None, "oversized"
    try:
        message = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, "not_json"
    if not isinstance(message, dict):
        return None, "not_object"
    if not isinstance(message.get("event"), str):
        return None, "no_event"
    return message, None


def decode_payload(message: dict[str, Any]) -> tuple[bytes | None, str | None]:
    media = message.get("media")
    if not isinstance(media, dict):
        return None, "bad_media"
    track = media.get("track")
    if track is not None and track not in ("inbound", "inbound_track"):
        return None, "outbound_track"
    payload = media.get("payload")
    if not isinstance(payload, str) or not payload:
        return None, "bad_media"
    try:
        return base64.b64decode(payload, validate=True), None
    except (binascii.Error, ValueError):
        return None, "bad_base64"


class TwilioMediaSerializer(TwilioFrameSerializer):
    """Pipecat's Twilio serializer plus validation, marks, the end of the stream, and send-time
    hooks."""

    def __init__(self, stream_sid: str, *, call_id: str, call_sid: str | None = None,
                 warnings: dict[str, int] | None = None) -> None:
        super().__init__(
            stream_sid,
            call_sid=call_sid,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        self.call_id = call_id
        self.stream_sid = stream_sid
        self.warnings = InputWarnings(warnings)  # live: the call's CallInfo shows them
        self.media_frames = 0
        # Set by the call: told the monotonic time of every audio frame sent.
        self.on_audio_sent: Callable[[float], None] | None = None
        # Told at once (reason, close code) when Twilio says `stop` (before the socket close
        # races it) or the socket broke the protocol badly enough to end the call.
        self.on_ended: Callable[[str, int], None] | None = None
        # Set by a recorded call: every PCM frame in (as received) and out (as sent).
        self.audio_sink: CallAudioSink | None = None
        self._violated = False
        self._inbound = bytearray()  # caller audio not yet a whole inbound frame

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, PlaybackMarkFrame):
            # Twilio echoes it once everything sent before it has played (or was cleared).
            return json.dumps({"event": "mark", "streamSid": self.stream_sid,
                               "mark": {"name": frame.mark_name}})
        out = await super().serialize(frame)
        if out is not None and isinstance(frame, AudioRawFrame):
            if self.audio_sink is not None:
                self.audio_sink.agent(frame.audio)
            if self.on_audio_sent is not None:
                self.on_audio_sent(time.monotonic())
        return out

    def _end(self, reason: str, close_code: int) -> None:
        if self.on_ended is not None:
            self.on_ended(reason, close_code)

    def _violation(self, reason: str, close_code: int) -> None:
        if not self._violated:
            self._violated = True
            self._end(f"protocol: {reason}", close_code)

    def _warn(self, kind: str) -> None:
        if self.warnings.add(kind, self.call_id) > MAX_BAD_MESSAGES:
            self._violation("too many malformed messages", CloseCode.POLICY)

    async def deserialize(self, data: str | bytes) -> Frame | None:
        message, problem = decode_message(data)
        if message is None:
            if problem == "oversized" and not self._violated:
                self.warnings.add("oversized", self.call_id)
                self._violation("message too big", CloseCode.TOO_BIG)
            else:
                self._warn(problem or "bad")
            return None
        event = message["event"]
        if event == "media":
            payload, problem = decode_payload(message)
            if payload is None:
                self._warn(problem or "bad_media")
                return None
            self.media_frames += 1
            # mu-law to PCM (pipecat resamples too if the pipeline runs at another rate).
            pcm = await ulaw_to_pcm(
                payload, self._twilio_sample_rate, self._sample_rate, self._input_resampler
            )
            if not pcm:
                return None
            if self.audio_sink is not None:
                self.audio_sink.caller(pcm)
            self._inbound += pcm
            if len(self._inbound) < self._sample_rate * 2 * INBOUND_FRAME_S:
                return None
            pcm, self._inbound = bytes(self._inbound), bytearray()
            return InputAudioRawFrame(audio=pcm, num_channels=1, sample_rate=self._sample_rate)
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                self._warn("bad_mark")
                return None
            return MarkEchoFrame(mark_name=name)
        if event == "dtmf":
            dtmf = message.get("dtmf")
            digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
            if not isinstance(digit, str):
                self._warn("bad_dtmf")
                return None
            try:
                return InputDTMFFrame(KeypadEntry(digit))
            except ValueError:
                self._warn("bad_dtmf")
                return None
        if event == "stop":
            self._end("stop", CloseCode.NORMAL)
            return None
        self._warn(f"late_{event}" if event in ("connected", "start") else "unknown_event")
        return None
