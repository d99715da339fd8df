"""Speech to text: one faster-whisper model shared by every call, behind a bounded scheduler.

Decoding is greedy and single-pass for latency: `beam_size=1`, `temperature=0`, no timestamps,
no conditioning on previous text, no VAD (the call pipeline has already cut the utterance), English.
The fallback thresholds are off (`None`) because with one temperature there is nothing to fall
back to; how much to trust the text is reported as `Transcript.confidence` instead.

The encoder window is fitted to the turn. Whisper's encoder always runs over 30 s, padded,
whatever the turn's length (faster-whisper pads every chunk to 30 s): most of a short turn's
cost. A turn of up to 29 s is encoded in a window of its own length plus `WINDOW_MARGIN_S`, at
least `MIN_WINDOW_S`, through CTranslate2 directly: a 3 s turn in about a third of the time.
Windows under ~8 s make tiny.en repeat itself ("Yes. Yes. Yes. ..."), and even at 8 s a turn
that repeats words ("Testing 123 testing 123") can set it looping, so a windowed transcript that
looks looped (`looks_looped`: the token cap for its length reached, text that compresses like a
loop, a sentence said twice in a row or a run of words three times) is decoded again over the
full 30 s window, as is every longer turn. `engines.status` counts them (`windowed_decodes`,
`full_window_decodes`, and `looped_windows`, the windowed transcripts decoded again).

Confidence, in [0, 1]:

    p_tokens = exp( sum_i(n_i * avg_logprob_i) / sum_i(n_i) )   # geometric-mean token probability
    p_speech = 1 - sum_i(n_i * no_speech_prob_i) / sum_i(n_i)
    confidence = p_tokens * p_speech

over the segments i, weighted by their token counts n_i (at least 1 each). No segments: 0.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import zlib
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
FULL_WINDOW_S = 30  # Whisper's own encoder window
MIN_WINDOW_S = 8  # a fitted window never shorter (see the module docstring)
WINDOW_MARGIN_S = 1.0  # quiet after the turn's last sample, inside a fitted window
# A windowed decode's token cap: more tokens than a fast talker says in that time is a loop.
TOKENS_BASE, TOKENS_PER_S = 10, 8
LOOP_COMPRESSION_RATIO = 2.4  # Whisper's own hallucination threshold (zlib ratio of the text)
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


def encoder_window_s(audio_s: float) -> int | None:
    """The encoder window (whole seconds) for a turn of `audio_s`, or None for Whisper's own
    30 s (a turn too long for a fitted window)."""
    window = max(MIN_WINDOW_S, math.ceil(audio_s + WINDOW_MARGIN_S))
    return window if window < FULL_WINDOW_S else None


_SENTENCE = re.compile(r"[^.?!]+[.?!]?")
_WORD = re.compile(r"[a-z0-9']+")


def looks_looped(text: str, n_tokens: int, cap: int) -> bool:
    """Whether a windowed transcript looks like the model repeating itself (see the module
    docstring); a false alarm only costs a decode over the full window."""
    if n_tokens >= cap:
        return True
    raw = text.encode()
    if len(raw) > 24 and len(raw) / len(zlib.compress(raw)) > LOOP_COMPRESSION_RATIO:
        return True
    sentences = [" ".join(_WORD.findall(s.lower())) for s in _SENTENCE.findall(text)]
    sentences = [s for s in sentences if s]
    if any(a == b for a, b in itertools.pairwise(sentences)):
        return True
    words = _WORD.findall(text.lower())
    for size in range(1, 9):
        for start in range(len(words) - 3 * size + 1):
            run = words[start:start + size]
            if run == words[start + size:start + 2 * size] == words[start + 2 * size:
                                                                    start + 3 * size]:
                return True
    return False


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
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                                    task="transcribe", language="en")
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppressed = get_suppressed_tokens(self._tokenizer, tuple(self._suppress))
        self.windowed_decodes = 0
        self.full_window_decodes = 0
        self.looped_windows = 0  # windowed transcripts decoded again over 30 s
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
        if warm_up:  # the first call pays for allocations (and, on a GPU, kernel JIT): both windows
            silence = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
            engine._decode_windowed(silence, MIN_WINDOW_S, None)
            engine._decode_full(silence, None)
            engine.windowed_decodes = engine.full_window_decodes = engine.looped_windows = 0
        return engine

    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        """Transcribe 16 kHz mono float32 audio in [-1, 1]."""
        samples = validate_audio(audio)
        return await self.scheduler.run(lambda ctx: self._decode(samples, ctx), call_id=call_id,
                                        timeout_s=self.timeout_s)

    def _decode(self, samples: npt.NDArray[np.float32], ctx: JobContext | None) -> Transcript:
        window = encoder_window_s(samples.size / SAMPLE_RATE)
        if window is not None:
            transcript = self._decode_windowed(samples, window, ctx)
            if transcript is not None:
                return transcript
        return self._decode_full(samples, ctx)

    def _decode_windowed(self, samples: npt.NDArray[np.float32], window_s: int,
                         ctx: JobContext | None) -> Transcript | None:
        """One greedy decode over a `window_s` encoder window; None when it looks looped."""
        if ctx is not None:
            ctx.check()
        n = window_s * SAMPLE_RATE
        audio = np.pad(samples, (0, n - samples.size))
        # no chunk_length: passing one resizes the shared extractor's own window
        features = self._model.feature_extractor(audio)[:, : n // self._model.feature_extractor.hop_length]
        encoded = self._model.encode(features)
        if ctx is not None:
            ctx.check()
        cap = min(self.max_new_tokens, int(TOKENS_BASE + TOKENS_PER_S * samples.size / SAMPLE_RATE))
        [result] = self._model.model.generate(
            encoded, [self._prompt], beam_size=1, max_length=len(self._prompt) + cap,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=self._suppressed)
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        text = self._tokenizer.decode(tokens).strip()
        if looks_looped(text, len(tokens), cap):
            log.debug("stt: a %d s window's transcript looks looped; decoding over 30 s", window_s)
            self.looped_windows += 1
            return None
        self.windowed_decodes += 1
        # as faster-whisper scores a segment (length penalty 1)
        score = SegmentScore(result.scores[0] * len(tokens) / (len(tokens) + 1),
                             float(result.no_speech_prob), len(tokens))
        return Transcript(text=text, confidence=confidence_from([score]),
                          audio_s=samples.size / SAMPLE_RATE,
                          timing=ctx.timing() if ctx is not None else _ZERO_TIMING)

    def _decode_full(self, samples: npt.NDArray[np.float32], ctx: JobContext | None) -> Transcript:
        """Whisper's own 30 s windows (faster-whisper's transcribe)."""
        self.full_window_decodes += 1
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
        stats = self.scheduler.stats()
        stats.extra.update(windowed_decodes=float(self.windowed_decodes),
                           full_window_decodes=float(self.full_window_decodes),
                           looped_windows=float(self.looped_windows))
        return stats

    async def close(self) -> None:
        if await self.scheduler.close():
            self._model = None  # frees it; a worker stuck in native code keeps it alive instead
