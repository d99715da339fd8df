"""The voice of a call: premium (ElevenLabs) or local (Piper), switched only between utterances,
with the local voice taking over the moment the premium one fails.

`TieredTTS` is a `TextToSpeech` shared by every call. Each call has a state (`begin_call`) with
its voice choice and tier; `set_tier` (from the tier engine) applies from the next `synthesize`,
never to one in progress, so the voice never changes in the middle of a sentence. If premium
speech fails at any point of an utterance (before the first byte or mid-sentence), the local
voice speaks the rest of that utterance in the same stream, starting at the word the premium
audio had reached (from ElevenLabs' character alignment), and the call stays local from then on.
The stream does not pause for a retry after audio has started: the local voice starts at once.

Usage is reported per utterance through `on_speech` (for the call's cost meter): premium
characters are the whole text once ElevenLabs streamed it to the end (billed whether or not it
was heard), or, when it failed mid-way, the characters its audio covered (ElevenLabs does not
say what it bills for a broken stream; this is our estimate).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from reautod.engines.base import AudioChunk, AudioEncoding, EngineHealth, TextToSpeech
from reautod.engines.elevenlabs import ElevenLabsTTS, PremiumSpeechError, VoiceChoice
from reautod.store.enums import VoiceTier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechUsage:
    """One utterance's speech, for the cost meter."""

    call_id: str
    tier: VoiceTier
    characters: int
    audio_s: float
    compute_s: float  # local compute (premium: 0, it is billed per character)


class FallbackMetrics(Protocol):
    def premium_fallback(self, reason: str) -> None: ...


@dataclass
class _CallVoice:
    voice: VoiceChoice | None
    tier: VoiceTier = VoiceTier.LOCAL
    fell_back: bool = False


def resume_at(text: str, spoken: int) -> int:
    """Where the local voice picks up: the start of the word the premium audio was in."""
    spoken = max(0, min(spoken, len(text)))
    if spoken == 0 or spoken == len(text) or text[spoken - 1].isspace() or text[spoken].isspace():
        return spoken
    start = max(text.rfind(" ", 0, spoken), text.rfind("\n", 0, spoken))
    return start + 1


def audio_seconds(chunk: AudioChunk) -> float:
    width = 1 if chunk.encoding is AudioEncoding.MULAW else 2
    return len(chunk.pcm) / width / chunk.sample_rate if chunk.sample_rate > 0 else 0.0


class TieredTTS:
    """See the module docstring."""

    def __init__(self, local: TextToSpeech, premium: ElevenLabsTTS | None, *,
                 on_speech: Callable[[SpeechUsage], None] | None = None,
                 metrics: FallbackMetrics | None = None) -> None:
        self.local = local
        self.premium = premium
        self.sample_rate = local.sample_rate
        self.on_speech = on_speech
        self.metrics = metrics
        self._calls: dict[str, _CallVoice] = {}

    def begin_call(self, call_id: str, voice: VoiceChoice | None) -> None:
        self._calls[call_id] = _CallVoice(voice)

    def end_call(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def set_tier(self, call_id: str, tier: VoiceTier) -> None:
        """From the next utterance on (an utterance being spoken keeps its voice)."""
        state = self._calls.get(call_id)
        if state is not None:
            state.tier = tier

    def tier_of(self, call_id: str) -> VoiceTier:
        state = self._calls.get(call_id)
        if state is None or state.fell_back:
            return VoiceTier.LOCAL
        return state.tier

    async def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        state = self._calls.get(call_id)
        rest = text
        if (state is not None and not state.fell_back and state.tier is VoiceTier.PREMIUM
                and state.voice is not None and self.premium is not None):
            spoken, audio_s, billed = 0, 0.0, 0
            try:
                async for piece in self.premium.stream(text, state.voice, call_id=call_id):
                    spoken = piece.characters_spoken
                    audio_s += audio_seconds(piece.audio)
                    billed = spoken
                    yield piece.audio
                rest, billed = "", len(text)
            except PremiumSpeechError as err:
                state.fell_back = True
                rest = text[resume_at(text, spoken):]
                log.warning("call %s: premium voice failed (%s); local voice from here on",
                            call_id, err.reason)
                if self.metrics is not None:
                    self.metrics.premium_fallback(err.reason)
            finally:
                if billed or audio_s:
                    self._report(call_id, VoiceTier.PREMIUM, billed, audio_s, 0.0)
        if rest.strip():
            async for chunk in self._local(rest, call_id):
                yield chunk

    async def _local(self, text: str, call_id: str) -> AsyncIterator[AudioChunk]:
        audio_s = compute_s = 0.0
        stream = self.local.synthesize(text, call_id=call_id)
        try:
            async for chunk in stream:
                audio_s += audio_seconds(chunk)
                compute_s += chunk.timing.compute_s if chunk.timing else 0.0
                yield chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            self._report(call_id, VoiceTier.LOCAL, len(text), audio_s, compute_s)

    def _report(self, call_id: str, tier: VoiceTier, characters: int, audio_s: float,
                compute_s: float) -> None:
        if self.on_speech is not None:
            self.on_speech(SpeechUsage(call_id, tier, characters, audio_s, compute_s))

    def health(self) -> EngineHealth:
        return self.local.health()
