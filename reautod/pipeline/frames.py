"""Our pipecat frames: what pipecat has no frame for.

Caller side: playback confirmations, speech start/stop and finished turns, the polite end.
Agent side: the parts of a reply on their way to speech, playback marks, and what speech reports
back upstream. System frames jump queues and survive interruptions; data frames keep their order
behind audio and are dropped by an interruption, like pipecat's own text and audio frames.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pipecat.frames.frames import DataFrame, SystemFrame

from reautod.conversation import Line
from reautod.engines.base import AudioChunk, ChatMessage

PreparedAudio = asyncio.Task[list[AudioChunk]]  # audio being synthesized ahead (greetings)

# -- the caller's side


@dataclass
class MarkEchoFrame(SystemFrame):
    """The media confirmed a playback mark: the audio before it played (or was cleared)."""

    mark_name: str = ""


@dataclass
class UserSpeechFrame(SystemFrame):
    """The caller started (`speaking=True`) or stopped speaking, per the VAD."""

    speaking: bool = True
    at: float = 0.0  # monotonic


@dataclass
class UserTurnFrame(SystemFrame):
    """A finished caller turn with its transcript (or the engine failure that lost it)."""

    text: str = ""
    confidence: float = 0.0
    speech_started_at: float = 0.0  # monotonic
    speech_ended_at: float = 0.0  # monotonic: end of the caller's voice, the latency origin
    transcript_at: float = 0.0  # monotonic
    error: str | None = None  # engine error code; the agent apologises


@dataclass
class HangupRequestFrame(SystemFrame):
    """End the call politely (operator, drain, silence, max duration): goodbye, then hang up."""

    reason: str = "operator"


@dataclass
class CallerSilentFrame(SystemFrame):
    """The caller has been silent long enough for a re-prompt (CallHygiene)."""


# -- the agent's side


@dataclass
class PlaybackMarkFrame(DataFrame):
    """Playback truth: the media echoes MarkEchoFrame(mark_name) once the audio before this frame
    has been heard; after an InterruptionFrame, pending marks never come back as played."""

    mark_name: str = ""


@dataclass
class ReplyTiming:
    """When a reply passed each stage (monotonic), stamped by the stage itself."""

    origin: float | None = None  # end of the caller speech it answers (latency origin)
    stt_s: float | None = None
    first_token_at: float | None = None
    first_audio_at: float | None = None  # TTS (or prepared) audio ready
    first_sent_at: float | None = None  # first audio frame on its way to the caller


@dataclass
class ReplyStartFrame(SystemFrame):
    """Reply `reply_id` begins: what to say if speaking it fails, and its timing record."""

    reply_id: int = 0
    fallback: Line = field(default_factory=lambda: Line(""))
    timing: ReplyTiming = field(default_factory=ReplyTiming)


@dataclass
class SayFrame(DataFrame):
    """Speak `line` as part of reply `reply_id` (`prepared`: its audio, still being made)."""

    reply_id: int = 0
    line: Line = field(default_factory=lambda: Line(""))
    prepared: PreparedAudio | None = None


@dataclass
class GenerateFrame(DataFrame):
    """Let the LLM write part of reply `reply_id` from `messages` (ReplyWriter)."""

    reply_id: int = 0
    messages: tuple[ChatMessage, ...] = ()
    max_tokens: int | None = None  # None: the configured cap
    sentences: int | None = None  # say at most this many whole sentences (Generate.sentences)
    model: str | None = None  # a named model (Generate.model); None: the reply model
    timing: ReplyTiming = field(default_factory=ReplyTiming)


@dataclass
class ReplyFailedFrame(DataFrame):
    """Writing reply `reply_id` failed (engine code): speak its fallback after what came before."""

    reply_id: int = 0
    code: str = ""


@dataclass
class ReplyEndFrame(DataFrame):
    """Nothing more will be said for reply `reply_id`."""

    reply_id: int = 0


@dataclass
class SpeechFailedFrame(SystemFrame):
    """Upstream, from speech: synthesizing reply `reply_id` failed; stop writing it."""

    reply_id: int = 0
    code: str = ""


@dataclass
class AgentBusyFrame(SystemFrame):
    """Upstream: the agent started (`busy`) or finished its turn (all replies played)."""

    busy: bool = True


@dataclass
class PlaybackHoldFrame(SystemFrame):
    """Downstream, to the output transport: the caller may be cutting in (`hold`), so stop
    sending the agent's audio; or it was a backchannel or noise, so send it on again."""

    hold: bool = True
