"""Speech to text: one faster-whisper model shared by every call, behind a bounded scheduler.

Decoding is greedy and single-pass for latency: `beam_size=1`, `temperature=0`, no timestamps,
no conditioning on previous text, no VAD (the call pipeline has already cut the utterance), English.
The fallback thresholds are off (`None`) because with one temperature there is nothing to fall
back to; how much to trust the text is reported as `Transcript.confidence` instead.

Confidence, in [0, 1]:

    p_tokens = exp( sum_i(n_i * avg_logprob_i) / sum_i(n_i) )   # geometric-mean token probability
    p_speech = 1 - sum_i(n_i * no_speech_prob_i) / sum_i(n_i)
    confidence = p_tokens * p_speech

over the segments i, weighted by their token counts n_i (at least 1 each). No segments: 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from reautod.engines.base import (
    EngineHealth,
    EngineStats,
    RequestTiming,
    Transcript,
)
from reautod.engines.device import Device, whisper_compute_type
from reautod.engines.scheduler import EngineScheduler, JobContext
from reautod.errors import EngineError, ValidationError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
MAX_AUDIO_S = 120.0  # one caller turn; longer input is a bug upstream, not speech to decode
N_TIMESTAMP_TOKENS = 1501  # <|0.00|> .. <|30.00|>, right after <|notimestamps|> in every Whisper
_ZERO_TIMING = RequestTiming(0.0, 0.0)  # the warm-up decode runs outside the scheduler


@dataclass(frozen=True)
class SegmentScore:
    """What the confidence formula reads from one decoded segment."""

    avg_logprob: float
    no_speech_prob: float
    n_tokens: int


def confidence_from(segments: Sequence[SegmentScore]) -> float:
    """The documented confidence formula (module docstring); always within [0, 1]."""
    if not segments:
        return 0.0
    weights = [max(1, s.n_tokens) for s in segments]
    total = float(sum(weights))
    mean_logprob = sum(w * s.avg_logprob for w, s in zip(weights, segments, strict=True)) / total
    no_speech = sum(w * s.no_speech_prob for w, s in zip(weights, segments, strict=True)) / total
    if math.isnan(mean_logprob) or math.isnan(no_speech):
        return 0.0
    p_tokens = math.exp(min(0.0, mean_logprob))
    p_speech = 1.0 - min(1.0, max(0.0, no_speech))
    return min(1.0, max(0.0, p_tokens * p_speech))


def validate_audio(audio: Any) -> npt.NDArray[np.float32]:
    """16 kHz mono float audio in [-1, 1] as a 1-D float32 array, or a ValidationError."""
    if not isinstance(audio, np.ndarray):
        raise ValidationError(f"STT audio must be a numpy array, not {type(audio).__name__}")
    if audio.ndim != 1:
        raise ValidationError(f"STT audio must be mono (1-D), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValidationError(f"STT audio must be float samples in [-1, 1], got {audio.dtype}")
    if audio.size == 0:
        raise ValidationError("STT audio is empty")
    if audio.size > MAX_AUDIO_S * SAMPLE_RATE:
        raise ValidationError(f"STT audio longer than {MAX_AUDIO_S:g} s")
    samples = audio.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise ValidationError("STT audio contains NaN or infinite samples")
    return samples


class WhisperSTT:
    """`SpeechToText` on faster-whisper. Build with `WhisperSTT.load` (blocking: call in a thread)."""

    def __init__(self, model: WhisperModel, model_path: Path, *, queue_size: int, timeout_s: float,
                 concurrency: int = 1, max_new_tokens: int = 160) -> None:
        self._model = model
        self.model_path = model_path
        self.timeout_s = timeout_s
        self.max_new_tokens = max_new_tokens
        begin = model.hf_tokenizer.token_to_id("<|notimestamps|>")
        if begin is None:
            raise EngineError(f"{model_path}: tokenizer has no <|notimestamps|> token")
        vocab = model.hf_tokenizer.get_vocab_size(with_added_tokens=True)
        # -1 keeps faster-whisper's default non-speech set; timestamps are suppressed outright,
        # or a random-weight model loops on them and never ends the segment.
        self._suppress = [-1, *range(begin + 1, min(vocab, begin + 1 + N_TIMESTAMP_TOKENS))]
        self.scheduler = EngineScheduler("stt", queue_size=queue_size, concurrency=concurrency)

    @classmethod
    def load(cls, path: Path, *, device: Device, queue_size: int, timeout_s: float,
             concurrency: int = 1, cpu_threads: int = 0, compute_type: str | None = None,
             warm_up: bool = True) -> WhisperSTT:
        """Load the CTranslate2 model directory; blocking."""
        from faster_whisper import WhisperModel

        model = WhisperModel(str(path), device=device,
                             compute_type=compute_type or whisper_compute_type(device),
                             cpu_threads=cpu_threads, num_workers=concurrency,
                             local_files_only=True)
        engine = cls(model, path, queue_size=queue_size, timeout_s=timeout_s,
                     concurrency=concurrency)
        if warm_up:  # the first call pays for allocations (and, on a GPU, kernel JIT)
            engine._decode(np.zeros(SAMPLE_RATE // 2, dtype=np.float32), None)
        return engine

    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        """Transcribe 16 kHz mono float32 audio in [-1, 1]."""
        samples = validate_audio(audio)
        return await self.scheduler.run(lambda ctx: self._decode(samples, ctx), call_id=call_id,
                                        timeout_s=self.timeout_s)

    def _decode(self, samples: npt.NDArray[np.float32], ctx: JobContext | None) -> Transcript:
        segments, _info = self._model.transcribe(
            samples,
            language="en",
            beam_size=1,
            best_of=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            compression_ratio_threshold=None,
            log_prob_threshold=None,
            no_speech_threshold=None,
            suppress_tokens=list(self._suppress),
            max_new_tokens=self.max_new_tokens,
        )
        texts, scores = self._consume(segments, ctx)
        return Transcript(
            text="".join(texts).strip(),
            confidence=confidence_from(scores),
            audio_s=samples.size / SAMPLE_RATE,
            timing=ctx.timing() if ctx is not None else _ZERO_TIMING,
        )

    @staticmethod
    def _consume(segments: Iterable[Any], ctx: JobContext | None
                 ) -> tuple[list[str], list[SegmentScore]]:
        # The generator decodes lazily: iterating it is the work, so it happens on this thread.
        texts: list[str] = []
        scores: list[SegmentScore] = []
        for segment in segments:
            if ctx is not None:
                ctx.check()
            texts.append(segment.text)
            scores.append(SegmentScore(float(segment.avg_logprob), float(segment.no_speech_prob),
                                       len(segment.tokens)))
        return texts, scores

    def health(self) -> EngineHealth:
        return self.scheduler.health("stt", str(self.model_path))

    def stats(self) -> EngineStats:
        return self.scheduler.stats()

    async def close(self) -> None:
        if await self.scheduler.close():
            self._model = None  # frees it; a worker stuck in native code keeps it alive instead
