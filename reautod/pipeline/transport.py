"""pipecat's FastAPI WebSocket transport, adapted to many phone calls in one process (the
transport of Twilio's media stream: pipeline.twilio_media).

Caller audio in: pipecat's input transport puts every 20 ms frame on a queue for a task of its
own (there to run an audio filter or VAD inside the transport; we have neither: VAD and turns are
the next processor's job), and that task pushes it on. Here the frame is pushed on directly,
which saves a queue, a task switch and a timed wait per frame, 50 times a second per call.

Agent audio out: pipecat paces frames at real time (one 20 ms frame every 20 ms) and, whenever it
falls behind, restarts its clock from now: every event-loop stall then becomes a gap in what the
caller hears, because Twilio plays what it has as soon as it has it. Here each talk spurt starts
`PLAYOUT_LEAD_S` ahead of real time (that much is sent at once and sits in Twilio's buffer), the
pace holds to the spurt's own clock, and a stall is caught up by sending late frames at once:
stalls shorter than the lead are never heard. What the caller heard still comes only from the
mark echoes (pipeline.playback), and a barge-in's `clear` drops the buffered lead with the rest.

Barge-in hold: when the caller starts speaking over the agent, the turn processor sends a
PlaybackHoldFrame before it knows whether this is a barge-in or a backchannel ("mhm"): the output
stops sending (the caller hears at most the lead already in Twilio's buffer), and either the
InterruptionFrame follows (pipecat drops the queue and sends `clear`; the frame that was waiting
is dropped too) or the hold is released and the agent goes on where it stopped. A hold never
outlasts `MAX_HOLD_S`, so a lost release cannot leave the agent mute.

Playback marks (PlaybackMarkFrame) travel in the output's audio queue behind the audio they
follow and are written by the serializer when their turn comes, as Twilio's `mark` messages.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import WebSocket
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketInputTransport,
    FastAPIWebsocketOutputTransport,
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

from reautod.pipeline.frames import PlaybackHoldFrame, PlaybackMarkFrame

PLAYOUT_LEAD_S = 0.1  # audio kept in Twilio's buffer ahead of what is playing
MAX_HOLD_S = 2.0  # longer than any barge-in decision (BACKCHANNEL_MAX_S + a transcription)


class _DirectAudioInput(FastAPIWebsocketInputTransport):
    """Pushes caller audio downstream from the socket's receive task, with no queue between."""

    async def push_audio_frame(self, frame: InputAudioRawFrame) -> None:
        if self._params.audio_in_enabled and self._params.audio_in_passthrough \
                and not self._paused:
            await self.push_frame(frame)

    def _create_audio_task(self) -> None:
        pass  # no queue to drain: push_audio_frame pushes


class PlayoutClock:
    """When the next agent frame may be sent: real time on the spurt's own clock, `lead_s` ahead.

    `after_frame(now)` is asked right after a frame went out and says how long to wait before
    the next. A spurt starts `lead_s` ahead (those frames go at once); a frame that is late
    goes at once too (the caller's buffer still covers it); a gap longer than the lead means the
    buffer ran dry, and the next frame starts a new spurt.
    """

    def __init__(self, frame_s: float, lead_s: float = PLAYOUT_LEAD_S) -> None:
        self.frame_s = frame_s
        self.lead_s = lead_s
        self._due: float | None = None  # when the next frame is due, less the lead

    def restart(self) -> None:
        """The caller's buffer was emptied (`clear`): the next frame starts a new spurt."""
        self._due = None

    def after_frame(self, now: float) -> float:
        if self._due is None or now > self._due + self.lead_s:
            self._due = now - self.lead_s
        wait = self._due - now
        self._due += self.frame_s
        return max(0.0, wait)


class PlaybackHold:
    """Whether the agent's next frame may go out: held while the caller may be cutting in."""

    def __init__(self, max_hold_s: float = MAX_HOLD_S) -> None:
        self.max_hold_s = max_hold_s
        self._released = asyncio.Event()
        self._released.set()
        self._interruptions = 0

    def set(self, hold: bool) -> None:
        if hold:
            self._released.clear()
        else:
            self._released.set()

    def interrupted(self) -> None:
        """The caller cut in: what waits is void (pipecat drops the queue and sends `clear`)."""
        self._interruptions += 1
        self._released.set()

    async def may_send(self) -> bool:
        """Wait out a hold (at most `max_hold_s`); False if an interruption ended it."""
        if self._released.is_set():
            return True
        interruptions = self._interruptions
        try:
            await asyncio.wait_for(self._released.wait(), self.max_hold_s)
        except TimeoutError:
            self._released.set()  # a release got lost: never leave the agent mute
        return self._interruptions == interruptions


class _LeadingAudioOutput(FastAPIWebsocketOutputTransport):
    """pipecat's output transport, paced by a PlayoutClock instead of its own restart-on-lag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._playout: PlayoutClock | None = None
        self._hold = PlaybackHold()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, PlaybackHoldFrame):
            self._hold.set(frame.hold)
            return  # ours alone: nothing past the transport wants it
        if isinstance(frame, InterruptionFrame):
            self._hold.interrupted()
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame) and self._playout is not None:
            self._playout.restart()  # pipecat sent the `clear`

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if not await self._hold.may_send():
            return False  # the caller cut in: this frame was meant for before the `clear`
        return await super().write_audio_frame(frame)

    async def write_transport_frame(self, frame: Frame) -> None:
        # pipecat hands over the frames of the audio queue it has no use of, in order, once
        # the audio before them was sent: a playback mark goes out right behind its audio.
        if isinstance(frame, PlaybackMarkFrame):
            await self._write_frame(frame)

    async def _write_audio_sleep(self) -> None:
        if self._playout is None:  # the frame length is known once the transport is set up
            self._playout = PlayoutClock(self._send_interval)
        wait = self._playout.after_frame(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)


class PacedWebsocketTransport(FastAPIWebsocketTransport):
    """The media WebSocket of one call: pipecat's transport, direct audio in, leading audio out."""

    def __init__(self, websocket: WebSocket, params: FastAPIWebsocketParams) -> None:
        if params.audio_in_filter is not None:
            raise ValueError("PacedWebsocketTransport has no audio filter stage")
        super().__init__(websocket, params)
        self._input = _DirectAudioInput(self, self._client, self._params, name=self._input_name)
        self._output = _LeadingAudioOutput(self, self._client, self._params,
                                           name=self._output_name)
