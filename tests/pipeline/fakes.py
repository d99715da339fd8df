"""Engines implementing reautod.engines.base's Protocols, recording what they received.

They stand in for the real engines where a test needs a known transcript, a failure on demand
or a cancellation to observe; the whole-call tests also run on the real engines.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from reautod.call_events import CallInfo
from reautod.call_recording import ConsentOutcome
from reautod.engines.base import (
    AudioChunk,
    ChatMessage,
    EngineHealth,
    EngineState,
    RequestTiming,
    TokenChunk,
    Transcript,
)
from reautod.engines.scheduler import requested_ahead_of_need
from reautod.errors import EngineError, UnavailableError

_TIMING = RequestTiming(queue_wait_s=0.0, compute_s=0.0)


@dataclass
class FakeSTT:
    """Transcribes any audio to `text` (per call: `texts[call_id]`), after `delay_s`."""

    text: str = "I would like to hear more"
    texts: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fail_with: Exception | None = None
    fail_next: int = 0  # fail only this many requests (with fail_with), then work again
    hang: bool = False
    calls: list[tuple[str, float]] = field(default_factory=list)  # (call_id, seconds of audio)

    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        self.calls.append((call_id, len(audio) / 16000))
        if self.hang:
            await asyncio.sleep(3600)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_with is not None and self.fail_next > 0:
            self.fail_next -= 1
            raise self.fail_with
        return Transcript(self.texts.get(call_id, self.text), 0.87, len(audio) / 16000, _TIMING)

    def health(self) -> EngineHealth:
        return EngineHealth("stt", EngineState.READY, "fake")


@dataclass
class FakeLLM:
    """Streams `reply` word by word, `token_delay_s` apart; records requests and closures."""

    reply: str = "That is great. Let me tell you about our free consultation. It takes an hour."
    token_delay_s: float = 0.0
    fail_with: Exception | None = None
    fail_next: int = 0
    stall_next: int = 0  # this many requests never yield a token (a stalled engine)
    requests: list[tuple[str, list[ChatMessage]]] = field(default_factory=list)
    max_tokens: list[int | None] = field(default_factory=list)  # per request
    models: list[str | None] = field(default_factory=list)  # the model each request named
    finished: int = 0
    closed_early: int = 0
    outcomes: list[str] = field(default_factory=list)  # per request: "finished" / "closed"

    async def stream_chat(
        self, messages: list[ChatMessage], *, call_id: str, max_tokens: int | None = None,
        model: str | None = None,
    ) -> AsyncIterator[TokenChunk]:
        self.requests.append((call_id, list(messages)))
        self.max_tokens.append(max_tokens)
        self.models.append(model)
        if self.fail_with is not None and self.fail_next > 0:
            self.fail_next -= 1
            raise self.fail_with
        if self.stall_next > 0:
            self.stall_next -= 1
            self.outcomes.append("stalled")
            await asyncio.sleep(3600)
        words = self.reply.split(" ")
        index = len(self.outcomes)
        self.outcomes.append("streaming")
        done = False
        try:
            for i, word in enumerate(words):
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                yield TokenChunk(word if i == 0 else " " + word)
            done = True
            self.finished += 1
        finally:
            self.outcomes[index] = "finished" if done else "closed"
            if not done:
                self.closed_early += 1

    def health(self) -> EngineHealth:
        return EngineHealth("llm", EngineState.READY, "fake")


@dataclass
class FakeTTS:
    """A 440 Hz tone (with `tone_per_text`, a pitch of its own per text), `seconds_per_char` long
    per character of text, in 100 ms chunks."""

    sample_rate: int = 16000
    seconds_per_char: float = 0.03
    delay_s: float = 0.0
    fail_with: Exception | None = None
    fail_next: int = 0
    texts: list[tuple[str, str]] = field(default_factory=list)  # (call_id, text)
    ahead: list[bool] = field(default_factory=list)  # per text: asked for ahead of need
    closed_early: int = 0
    tone_per_text: bool = False  # each text its own pitch, so a text's audio can be found

    def pcm(self, text: str) -> bytes:
        """The audio `text` is synthesized to."""
        hz = 300 + zlib.crc32(text.encode()) % 600 if self.tone_per_text else 440
        n = max(1, int(len(text) * self.seconds_per_char * self.sample_rate))
        t = np.arange(n) / self.sample_rate
        return (np.sin(2 * math.pi * hz * t) * 8000).astype(np.int16).tobytes()

    async def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        self.texts.append((call_id, text))
        self.ahead.append(requested_ahead_of_need())
        if self.fail_with is not None and self.fail_next > 0:
            self.fail_next -= 1
            raise self.fail_with
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        pcm = self.pcm(text)
        step = self.sample_rate // 10 * 2
        done = False
        try:
            for i in range(0, len(pcm), step):
                yield AudioChunk(pcm[i : i + step], self.sample_rate)
                await asyncio.sleep(0)
            done = True
        finally:
            if not done:
                self.closed_early += 1

    def health(self) -> EngineHealth:
        return EngineHealth("tts", EngineState.READY, "fake")


@dataclass
class FakeEngines:
    """The engine set the CallManager takes; `missing` makes require_ready refuse."""

    stt: FakeSTT = field(default_factory=FakeSTT)
    llm: FakeLLM = field(default_factory=FakeLLM)
    tts: FakeTTS = field(default_factory=FakeTTS)
    missing: str | None = None

    def require_ready(self) -> None:
        if self.missing:
            raise UnavailableError(f"cannot take calls, engines not ready: {self.missing}")


def engine_error(code: str = "llm_failed") -> EngineError:
    return EngineError("injected failure", code=code)


@dataclass
class FakeAudioSink:
    """Implements CallAudioSink: keeps both directions' PCM, how it was closed (the consent
    outcomes) and how much audio it held when it was discarded."""

    caller_pcm: bytearray = field(default_factory=bytearray)
    agent_pcm: bytearray = field(default_factory=bytearray)
    outcomes: list[ConsentOutcome] = field(default_factory=list)
    discarded_at: list[int] = field(default_factory=list)  # bytes held (both tracks) each time

    @property
    def closed(self) -> int:
        return len(self.outcomes)

    def caller(self, pcm: bytes) -> None:
        self.caller_pcm += pcm

    def agent(self, pcm: bytes) -> None:
        self.agent_pcm += pcm

    async def close(self, outcome: ConsentOutcome) -> None:
        self.outcomes.append(outcome)

    async def discard(self) -> None:
        self.discarded_at.append(len(self.caller_pcm) + len(self.agent_pcm))


@dataclass
class FakeRecording:
    """Implements CallRecording: one FakeAudioSink per call id, with the rate it was opened at."""

    sinks: dict[str, FakeAudioSink] = field(default_factory=dict)
    rates: dict[str, int] = field(default_factory=dict)

    async def open(self, info: CallInfo, sample_rate: int) -> FakeAudioSink:
        self.rates[info.call_id] = sample_rate
        return self.sinks.setdefault(info.call_id, FakeAudioSink())
