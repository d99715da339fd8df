"""The engines as the call pipeline sees them, each request metered for its call.

`MeteredEngines` implements the pipeline's `Engines` Protocol over the shared engine set: every
STT, LLM and TTS request carries its call id, so each one's usage lands on that call's meter
(`CostTracker.usage_meter`) without the pipeline knowing that cost exists. Nothing here awaits
beyond the engine itself; metering is a few additions on the event loop.

What is measured:
- STT: the transcript's audio seconds and its compute time (queue wait excluded).
- LLM: completion tokens (the local engine streams one token per chunk), prompt tokens when the
  engine reports them on its last chunk, and compute time from that chunk's timing. A reply cut
  off by a barge-in never gets its last chunk: its compute is the time from its first token to
  the cut (the prompt's evaluation before the first token is then not counted).
- TTS: `TieredTTS` reports each utterance per voice tier (characters, audio seconds, local
  compute time; a synthesis cut off for what it produced) through `CostTracker.on_speech`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import numpy.typing as npt

from reautod.cost.meters import CallMeter
from reautod.engines.base import (
    ChatMessage,
    EngineHealth,
    LanguageModel,
    SpeechToText,
    TokenChunk,
    Transcript,
)
from reautod.engines.registry import EngineSet
from reautod.engines.tiered import TieredTTS

MeterOf = Callable[[str], CallMeter]


class MeteredSTT:
    def __init__(self, inner: SpeechToText, meter_of: MeterOf) -> None:
        self.inner = inner
        self.meter_of = meter_of

    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        transcript = await self.inner.transcribe(audio, call_id=call_id)
        self.meter_of(call_id).stt(transcript.audio_s, transcript.timing.compute_s)
        return transcript

    def health(self) -> EngineHealth:
        return self.inner.health()


class MeteredLLM:
    def __init__(self, inner: LanguageModel, meter_of: MeterOf,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.meter_of = meter_of
        self.monotonic = monotonic

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        stream = self.inner.stream_chat(messages, call_id=call_id, max_tokens=max_tokens,
                                        model=model)
        tokens, prompt_tokens = 0, 0
        first_at: float | None = None
        compute_s: float | None = None
        try:
            async for chunk in stream:
                if chunk.text:
                    tokens += 1
                    if first_at is None:
                        first_at = self.monotonic()
                if chunk.timing is not None:
                    compute_s = chunk.timing.compute_s
                    prompt_tokens = chunk.prompt_tokens or 0
                yield chunk
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            if compute_s is None:
                compute_s = 0.0 if first_at is None else self.monotonic() - first_at
            if tokens or compute_s:
                self.meter_of(call_id).llm(prompt_tokens, tokens, compute_s)

    def health(self) -> EngineHealth:
        return self.inner.health()


class MeteredEngines:
    """The pipeline's `Engines` (reautod.pipeline.calls) with every request metered; the voice
    is the call's `TieredTTS`, which reports each utterance's speech to the meter itself."""

    def __init__(self, inner: EngineSet, meter_of: MeterOf, tts: TieredTTS) -> None:
        self.inner = inner
        self.stt = MeteredSTT(inner.stt, meter_of)
        self.llm = MeteredLLM(inner.llm, meter_of)
        self.tts = tts

    def require_ready(self) -> None:
        self.inner.require_ready()
