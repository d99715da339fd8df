"""The small async interfaces every inference engine offers to the call pipeline.

One engine instance of each kind serves every live call. Implementations run inference off the
event loop, queue requests from concurrent calls in a bounded queue, and report queue wait and
compute time with every result. Cancelling the awaiting task cancels the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from reautod.errors import UnavailableError


class EngineState(StrEnum):
    MISSING = "missing"  # model files not installed
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"  # failed to load, or failing requests


@dataclass(frozen=True)
class EngineHealth:
    """What `reautoctl health` shows for one engine."""

    name: Literal["stt", "llm", "tts"]
    state: EngineState
    model: str | None  # path or name of the model it loads
    detail: str = ""  # for MISSING: the command that fixes it; for FAILED: the last error
    queue_depth: int = 0
    failures: int = 0


@dataclass(frozen=True)
class RequestTiming:
    """How long a request waited in its engine's queue and how long it computed."""

    queue_wait_s: float
    compute_s: float


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # 0..1, from avg_logprob and no_speech_prob
    audio_s: float
    timing: RequestTiming


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class TokenChunk:
    """One streamed piece of an LLM reply; `timing` is set on the last chunk only.

    The last chunk may have empty `text`: it marks the end of the reply and carries the timing,
    and `prompt_tokens` where the engine knows it (for the call's cost meter).
    """

    text: str
    timing: RequestTiming | None = None
    prompt_tokens: int | None = None


class AudioEncoding(StrEnum):
    PCM16 = "pcm_s16le"  # mono signed 16-bit little-endian PCM
    MULAW = "mulaw"  # 8-bit G.711 mu-law, what a Twilio media payload carries


@dataclass(frozen=True)
class AudioChunk:
    """Mono audio from TTS, one per sentence (local voice) or per network chunk (premium voice).

    `pcm` holds the samples in `encoding`: signed 16-bit PCM unless it says mu-law (the premium
    voice's `ulaw_8000`, which goes into a Twilio media payload as it is, with no resampling).
    `timing` on each chunk: the request's queue wait and this sentence's compute time.
    """

    pcm: bytes
    sample_rate: int
    timing: RequestTiming | None = None
    encoding: AudioEncoding = AudioEncoding.PCM16


@dataclass
class EngineStats:
    """Counters of one engine's scheduler since start-up, for health and metrics."""

    requests: int = 0  # accepted into the queue
    failures: int = 0  # raised or timed out
    cancelled: int = 0  # the caller went away (barge-in, hang-up) before the reply was complete
    rejected: int = 0  # queue full
    timeouts: int = 0  # also counted in failures
    queue_depth: int = 0  # waiting now, not yet started
    in_flight: int = 0  # running now on a worker thread
    completed: int = 0
    queue_wait_s_total: float = 0.0  # over started requests
    compute_s_total: float = 0.0  # over finished requests
    extra: dict[str, float] = field(default_factory=dict)


class SpeechToText(Protocol):
    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        """Transcribe 16 kHz mono float32 audio in [-1, 1]."""
        ...

    def health(self) -> EngineHealth: ...


class LanguageModel(Protocol):
    def stream_chat(
        self, messages: list[ChatMessage], *, call_id: str, max_tokens: int | None = None,
        model: str | None = None,
    ) -> AsyncIterator[TokenChunk]:
        """Stream the assistant reply; closing the iterator stops generation within a token.

        `model`: a named model (reautod.engines.switch), None for this engine's own. An engine
        that is one model refuses every name (`refuse_named`)."""
        ...

    def health(self) -> EngineHealth: ...


def refuse_named(model: str | None) -> None:
    """For an engine that is one model: a request naming a model is an UnavailableError."""
    if model is not None:
        raise UnavailableError(f"no language model named {model!r} here (named models are "
                               "[llm_models] local and [llm_pool] endpoints' models)")


async def relay(stream: AsyncIterator[TokenChunk]) -> AsyncIterator[TokenChunk]:
    """Yield what `stream` yields, closing it however this generator ends: a wrapper's caller
    closing it (barge-in) closes the inner stream now, not when it is collected."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


class TextToSpeech(Protocol):
    sample_rate: int

    def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        """Stream audio for `text`, sentence by sentence; closing it stops within a sentence."""
        ...

    def health(self) -> EngineHealth: ...
