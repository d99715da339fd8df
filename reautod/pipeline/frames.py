"""Our pipecat frames: what pipecat has no frame for (Twilio marks, stream stop, finished turns).

All are system frames: an interruption must never drop them from a processor's queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import SystemFrame


@dataclass
class MarkEchoFrame(SystemFrame):
    """Twilio echoed one of our marks: the audio before it played (or was cleared)."""

    mark_name: str = ""


@dataclass
class StreamStopFrame(SystemFrame):
    """Twilio sent `stop`: the call is over on the phone side."""

    reason: str = "stop"


@dataclass
class ProtocolViolationFrame(SystemFrame):
    """The media socket broke the protocol badly enough that the call must end."""

    reason: str = ""
    close_code: int = 1008


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
    """Someone outside the call (operator, drain) wants it ended: say goodbye, then hang up."""

    reason: str = "operator"
