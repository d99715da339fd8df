"""What the call pipeline reports: typed records and the observer Protocol the daemon plugs in.

Observer methods are called on the event loop, synchronously, from inside live calls: they must
not block (the daemon's implementation puts the records on the event bus and the store's
write-behind queue). An observer that raises is logged and never breaks the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

LATENCY_KEYS = ("stt_s", "llm_first_token_s", "tts_first_audio_s", "voice_to_voice_s")


class CallState(StrEnum):
    CONNECTING = "connecting"  # socket open, waiting for Twilio's `start`
    LISTENING = "listening"
    THINKING = "thinking"  # LLM/TTS working on a reply, nothing played yet
    SPEAKING = "speaking"
    ENDING = "ending"  # saying goodbye or tearing down
    ENDED = "ended"


class CallStateSource(StrEnum):
    """Which layer a `call.state` event comes from."""

    PIPELINE = "pipeline"  # the conversation: a CallState value
    TWILIO = "twilio"  # the phone line, from Twilio's status callbacks (queued .. completed)
    REAUTOD = "reautod"  # what reautod did to the line itself: queued, transferred


class CallStateEvent(BaseModel):
    """The one payload of the `call.state` topic, whichever layer changed; the TUI parses it."""

    model_config = ConfigDict(frozen=True)
    TOPIC: ClassVar[str] = "call.state"

    call_id: str = Field(min_length=1)
    state: str = Field(min_length=1, description="A CallState value (pipeline) or Twilio's "
                                                 "call status (twilio, reautod)")
    source: CallStateSource
    campaign: str | None = None


class LiveCall(BaseModel):
    """One live call: the `call.started` payload and a row of `calls.list`."""

    model_config = ConfigDict(frozen=True)

    call_id: str = Field(min_length=1)
    stream_sid: str
    call_sid: str | None
    lead_name: str = Field(description="The lead's real name: clients mask it")
    campaign: str | None
    direction: Literal["outbound", "inbound"]
    state: CallState
    started_at: datetime
    last_utterance: str | None = Field(None, description="The last thing either side said")
    last_voice_to_voice_s: float | None = None
    turns: int = 0
    barge_ins: int = 0
    engine_failures: int = 0
    input_warnings: dict[str, int] = Field(default_factory=dict)
    transport: Literal["twilio", "webrtc", "sounddevice"] = Field(
        "twilio", description="How the caller is reached: a phone line, a browser (WebRTC) or "
                              "`reautoctl talk`")


@dataclass
class CallInfo:
    """One live call as `reautoctl call list` and the TUI show it."""

    call_id: str
    stream_sid: str
    call_sid: str | None
    lead_name: str  # the real name: mask it before logging
    campaign: str | None
    direction: Literal["outbound", "inbound"]
    state: CallState
    started_at: datetime
    last_utterance: str | None = None  # the last thing either side said
    last_voice_to_voice_s: float | None = None
    turns: int = 0
    barge_ins: int = 0
    engine_failures: int = 0
    input_warnings: dict[str, int] = field(default_factory=dict)
    # how the caller is reached: a phone line, a browser (WebRTC) or `reautoctl talk`
    transport: Literal["twilio", "webrtc", "sounddevice"] = "twilio"

    def result(self) -> LiveCall:
        return LiveCall.model_validate(asdict(self))

    def wire(self) -> dict[str, Any]:
        return self.result().model_dump(mode="json")


@dataclass(frozen=True)
class TurnRecord:
    """One utterance of the conversation with its timings.

    `latencies` holds the keys of LATENCY_KEYS that were measured for this turn, in seconds,
    all counted from the end of the caller's speech: stt_s (transcript ready),
    llm_first_token_s, tts_first_audio_s and voice_to_voice_s (first agent audio byte sent).
    """

    call_id: str
    index: int
    speaker: Literal["caller", "agent"]
    text: str
    confidence: float | None
    started_at: datetime
    ended_at: datetime
    latencies: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    error: str | None = None  # engine failure code when the turn ended in an apology

    def wire(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = self.ended_at.isoformat()
        return data


class CallObserver(Protocol):
    """Receives the life of every call; every method is sync, cheap and must not block."""

    def on_call_started(self, info: CallInfo) -> None: ...

    def on_turn(self, turn: TurnRecord) -> None: ...

    def on_barge_in(self, call_id: str, heard_text: str) -> None: ...

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """The call moved to `state` (listening, thinking, speaking, ending, ended)."""
        ...

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """The caller pressed a key (0-9, *, #); telephony checks it against the opt-out key."""
        ...

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None: ...


class ObserverFanOut:
    """One CallObserver that tells several, in order, each guarded on its own: one that raises
    is logged and the others still hear the call (telephony acts on opt-outs and key presses
    whatever the store or the bus did)."""

    def __init__(self, *observers: CallObserver) -> None:
        self._observers = list(observers)

    def add(self, observer: CallObserver) -> None:
        """Tell `observer` too, after the others (a part built after the call manager, which
        holds this fan-out, subscribes here: outbound's live-call observer)."""
        self._observers.append(observer)

    def on_call_started(self, info: CallInfo) -> None:
        self._tell("on_call_started", lambda observer: observer.on_call_started(info))

    def on_turn(self, turn: TurnRecord) -> None:
        self._tell("on_turn", lambda observer: observer.on_turn(turn))

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        self._tell("on_barge_in", lambda observer: observer.on_barge_in(call_id, heard_text))

    def on_call_state(self, call_id: str, state: CallState) -> None:
        self._tell("on_call_state", lambda observer: observer.on_call_state(call_id, state))

    def on_dtmf(self, call_id: str, digit: str) -> None:
        self._tell("on_dtmf", lambda observer: observer.on_dtmf(call_id, digit))

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self._tell(
            "on_call_ended", lambda observer: observer.on_call_ended(call_id, reason, duration_s)
        )

    def _tell(self, method: str, call: Callable[[CallObserver], None]) -> None:
        for observer in self._observers:
            try:
                call(observer)
            except Exception:  # an observer's bug must not end the call or silence the others
                log.exception("call observer %s.%s failed", type(observer).__name__, method)


class SafeObserver(ObserverFanOut):
    """One observer, guarded: a failing observer never breaks a call."""

    def __init__(self, inner: CallObserver) -> None:
        super().__init__(inner)
