"""A CallMedia that is not Twilio: frames in, audio and marks out, nothing on a socket.

It implements the media contract (reautod.pipeline.media) the way a local sound card would: agent
audio "plays" the moment it arrives, and a playback mark is echoed back upstream from the output
once everything before it has played, unless the test holds the echoes to release them later.
Its agent audio leaves in 20 ms frames, unlike Twilio's 40 ms, so the session's use of the
media's format is tested too. The test pushes caller-side frames (turns, keys, an interruption) into its
input, where the media's own input would push caller audio.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

from pipecat.frames.frames import Frame, InterruptionFrame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from reautod.call_recording import CallAudioSink
from reautod.pipeline.frames import MarkEchoFrame, PlaybackMarkFrame
from reautod.pipeline.media import MediaFormat, MediaHooks

LOOPBACK_FORMAT = MediaFormat(sample_rate=8000, out_frame_ms=20)


class _Input(FrameProcessor):
    """Passes on what the test queues into it."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class _Output(FrameProcessor):
    """Plays agent audio at once; echoes marks (or holds them); a clear drops held marks."""

    def __init__(self, media: LoopbackMedia, hooks: MediaHooks) -> None:
        super().__init__(name="loopback-out")
        self._media = media
        self._hooks = hooks

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        media = self._media
        if isinstance(frame, OutputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            media.audio_bytes += len(frame.audio)
            media.audio += frame.audio
            media.rates.add(frame.sample_rate)
            self._hooks.audio_sent(time.monotonic())
        elif isinstance(frame, PlaybackMarkFrame):
            media.marks.append(frame.mark_name)
            media.pieces.append(media.audio_bytes)
            media.audio_bytes = 0
            if media.hold_marks:
                media.held.append(frame.mark_name)
            else:
                await self.push_frame(MarkEchoFrame(mark_name=frame.mark_name),
                                      FrameDirection.UPSTREAM)
        else:
            if isinstance(frame, InterruptionFrame):
                media.clears += 1
                media.held.clear()  # never played: never echoed
            await self.push_frame(frame, direction)

    async def release(self, count: int) -> None:
        for name in self._media.held[:count]:
            await self.push_frame(MarkEchoFrame(mark_name=name), FrameDirection.UPSTREAM)
        del self._media.held[:count]


@dataclass
class LoopbackMedia:
    """CallMedia for tests; `say` feeds the caller side, `release` lets held marks play."""

    hold_marks: bool = False
    stream_id: str = "loopback"
    transport: Literal["twilio", "webrtc", "sounddevice"] = "twilio"
    carrier_call_id: str | None = None
    input_warnings: dict[str, int] = field(default_factory=dict)
    audio: bytearray = field(default_factory=bytearray)  # all the agent audio played
    audio_bytes: int = 0  # agent audio since the last mark
    pieces: list[int] = field(default_factory=list)  # agent audio bytes before each mark
    rates: set[int] = field(default_factory=set)
    marks: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    clears: int = 0
    closed: list[tuple[int, str]] = field(default_factory=list)
    format: MediaFormat = LOOPBACK_FORMAT
    _input: _Input | None = None
    _output: _Output | None = None
    _hooks: MediaHooks | None = None

    def processors(self, hooks: MediaHooks,
                   sink: CallAudioSink | None) -> tuple[FrameProcessor, FrameProcessor]:
        self._hooks = hooks
        self._input, self._output = _Input(name="loopback-in"), _Output(self, hooks)
        return self._input, self._output

    async def say(self, frame: Frame) -> None:
        assert self._input is not None, "the call has not started"
        await self._input.queue_frame(frame)

    async def release(self, count: int = 1) -> None:
        assert self._output is not None
        await self._output.release(count)

    def hang_up(self) -> None:
        """The caller hangs up."""
        assert self._hooks is not None
        self._hooks.ended("stop", 1000)

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))
        await asyncio.sleep(0)
