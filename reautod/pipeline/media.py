"""The media seam: what carries one call's audio to and from the caller, as the session needs it.

The session builds each call's pipecat pipeline around a `CallMedia`: its input processor first,
its output processor last, our processors between. Twilio's media stream over a WebSocket
(pipeline.twilio_media) is one; a browser over WebRTC or the local sound card (`reautoctl talk`)
are others, each a `CallMedia` of its own on the same session, engines and conversation.

What a media must do:

- input: push the caller's audio as InputAudioRawFrame (mono PCM16 at `format.sample_rate`),
  key presses as InputDTMFFrame (if it has keys);
- output: play OutputAudioRawFrame (same format; speech sends whole `format.out_frame_bytes`
  frames); on InterruptionFrame drop every bit of audio not yet played;
- playback truth: for each PlaybackMarkFrame(mark_name) that reaches its output, produce
  MarkEchoFrame(mark_name) once the caller has heard the audio sent before it (pushed downstream from
  its input, or upstream from its output: speech takes it from either side). A mark pending at
  an interruption must never come back as played (dropped, or echoed after the interruption);
- `hooks.audio_sent(now)` for every agent audio frame that goes out (monotonic time: latency),
  `hooks.ended(reason, close_code)` when the caller's side is gone (hung up, closed, broke the
  protocol); `close(code, reason)` hangs up the caller's side, any number of times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from pipecat.processors.frame_processor import FrameProcessor

from reautod.call_recording import CallAudioSink


@dataclass(frozen=True)
class MediaFormat:
    """The call's audio in the pipeline: mono PCM16 at `sample_rate` both ways (VAD, turn
    detection and speech run at it); agent audio leaves in frames of `out_frame_ms`.

    The shared VAD batches 8 kHz windows (pipeline.vad), so a media delivers 8 kHz: pipecat's
    own transports resample to the rate they are configured with."""

    sample_rate: int
    out_frame_ms: int

    @property
    def out_frame_bytes(self) -> int:
        return self.sample_rate * 2 * self.out_frame_ms // 1000


@dataclass(frozen=True)
class MediaHooks:
    """What a media tells the session (callbacks run on the event loop, must not block)."""

    audio_sent: Callable[[float], None]
    ended: Callable[[str, int], None]


class CallMedia(Protocol):
    """One call's audio link to the caller (see the module docstring for the contract)."""

    @property
    def format(self) -> MediaFormat: ...

    @property
    def transport(self) -> Literal["twilio", "webrtc", "sounddevice"]:
        """How the caller is reached, as the call's record says (store.enums.CallTransport)."""
        ...

    @property
    def stream_id(self) -> str:
        """This media's own id of the stream (Twilio: the StreamSid)."""
        ...

    @property
    def carrier_call_id(self) -> str | None:
        """The carrier's id of the call (Twilio: the CallSid); None without a carrier."""
        ...

    @property
    def input_warnings(self) -> dict[str, int]:
        """Bad input ignored so far, by kind; live (the call's CallInfo shows this dict)."""
        ...

    def processors(self, hooks: MediaHooks,
                   sink: CallAudioSink | None) -> tuple[FrameProcessor, FrameProcessor]:
        """The pipeline's (input, output) processors; `sink` gets both directions' PCM as they
        cross to and from the caller (call recording)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Hang up the caller's side with `code` (`CloseCode.NORMAL`: the call is over) and a short `reason`."""
        ...
