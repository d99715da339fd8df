"""What a simulated Twilio call measured and recorded. Times are call-clock seconds since connect."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from reautod.telephony.audio import TELEPHONY_RATE, ulaw_to_pcm16, write_ulaw_wav, write_wav


class EndedBy(StrEnum):
    """Why the call ended."""

    HANGUP = "hangup"  # the script ran out or reached Hangup; we sent `stop`
    SERVER = "server"  # the server closed the socket (or it broke) first
    MAX_DURATION = "max_duration"  # CallOptions.max_call_s passed; we sent `stop`
    DROPPED = "dropped"  # the script reached Drop: connection cut, no `stop`


@dataclass(frozen=True)
class UtteranceRecord:
    """One caller utterance and the agent's answer as the phone saw it."""

    step_index: int
    label: str
    started_at: float  # first frame of it sent
    ended_at: float  # last frame of it sent
    barge_in: bool
    first_agent_media_at: float | None  # first agent media frame arriving at or after ended_at

    @property
    def latency_s(self) -> float | None:
        """Voice-to-voice latency: end of the caller's audio to the first agent audio."""
        if self.first_agent_media_at is None:
            return None
        return self.first_agent_media_at - self.ended_at


@dataclass(frozen=True)
class BargeInRecord:
    """A barge-in: the agent started speaking, the caller cut in, the server (maybe) cleared."""

    step_index: int
    agent_speech_started_at: float
    onset_at: float  # first frame of the caller's barge-in utterance sent
    first_clear_at: float | None  # first `clear` received at or after onset_at
    silenced_at: float | None  # agent audio first stopped reaching the caller at or after onset

    @property
    def clear_latency_s(self) -> float | None:
        return None if self.first_clear_at is None else self.first_clear_at - self.onset_at

    @property
    def silence_latency_s(self) -> float | None:
        """Caller onset -> the agent's audio stops reaching the caller (held, or cleared)."""
        return None if self.silenced_at is None else self.silenced_at - self.onset_at


@dataclass(frozen=True)
class MarkRecord:
    """A `mark` the agent sent and our echo of it."""

    name: str
    received_at: float
    echoed_at: float | None  # None: the call ended before its audio played
    played: bool  # True: echoed after its audio played; False: echoed because of a `clear`


@dataclass(frozen=True)
class MediaArrival:
    """One agent `media` message: when it arrived and how many mu-law bytes it carried."""

    at: float
    nbytes: int


@dataclass(frozen=True)
class StepTimeout:
    step_index: int
    step: str  # the step's class name
    at: float


@dataclass(frozen=True)
class CallResult:
    """Everything one simulated call measured. Build-only by the simulator; read by anyone."""

    account_sid: str
    call_sid: str
    stream_sid: str
    ended_by: EndedBy
    duration_s: float
    close_code: int | None
    close_reason: str
    steps_completed: int
    utterances: tuple[UtteranceRecord, ...]
    barge_ins: tuple[BargeInRecord, ...]
    marks: tuple[MarkRecord, ...]
    clears: tuple[float, ...]
    dtmf_sent: tuple[tuple[float, str], ...]
    agent_media: tuple[MediaArrival, ...]
    timeouts: tuple[StepTimeout, ...]
    frames_sent: int  # caller media messages (20 ms each)
    late_frames: int  # frames that went out more than 20 ms (wall) after their due time
    max_send_lag_s: float  # wall seconds: the worst lateness of a frame (loop overloaded?)
    agent_bytes_received: int
    agent_bytes_played: int
    agent_bytes_cleared: int
    malformed: int  # server messages we could not use (not JSON, bad base64, wrong streamSid...)
    malformed_examples: tuple[str, ...]  # the first few reasons
    unknown_events: int  # well-formed messages with an event Twilio does not accept
    caller_audio: bytes = field(repr=False)  # mu-law, one 160-byte frame per tick: what we sent
    agent_audio: bytes = field(repr=False)  # mu-law, same timeline: what the caller heard
    agent_audio_received: bytes = field(repr=False)  # mu-law, every agent byte in arrival order

    @property
    def frames_received(self) -> int:
        return len(self.agent_media)

    @property
    def marks_received(self) -> int:
        return len(self.marks)

    @property
    def marks_echoed(self) -> int:
        return sum(1 for mark in self.marks if mark.echoed_at is not None)

    @property
    def latencies_s(self) -> list[float]:
        """Voice-to-voice latency of every caller utterance the agent answered."""
        return [u.latency_s for u in self.utterances if u.latency_s is not None]

    def write_agent_wav(self, path: str | Path) -> None:
        """What the caller heard, on the call timeline (blocking: use a thread on a loop)."""
        write_ulaw_wav(path, self.agent_audio)

    def write_caller_wav(self, path: str | Path) -> None:
        """What the caller sent, on the same timeline as `write_agent_wav`."""
        write_ulaw_wav(path, self.caller_audio)

    def write_stereo_wav(self, path: str | Path) -> None:
        """Caller on the left, what the caller heard on the right: the call as one file."""
        frames = min(len(self.caller_audio), len(self.agent_audio))
        both = np.stack([ulaw_to_pcm16(self.caller_audio[:frames]),
                         ulaw_to_pcm16(self.agent_audio[:frames])], axis=1)
        write_wav(path, both, TELEPHONY_RATE)

    @property
    def recorded_duration_s(self) -> float:
        return len(self.caller_audio) / TELEPHONY_RATE

    def as_dict(self) -> dict[str, Any]:
        """Every measurement as JSON-ready values (audio left out), e.g. for `--json` output."""
        out: dict[str, Any] = {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if not isinstance(getattr(self, f.name), bytes)
        }
        out["latencies_s"] = self.latencies_s
        out["marks_echoed"] = self.marks_echoed
        return out


def first_at_or_after(times: list[float], moment: float) -> float | None:
    """The first of sorted `times` that is >= `moment`."""
    index = bisect_left(times, moment)
    return times[index] if index < len(times) else None


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value
