"""Text to speech: one Piper voice in-process on the CPU, shared by every call.

`synthesize` streams one AudioChunk per sentence as Piper produces it. The job checks its cancel
flag before each sentence, so closing the stream (barge-in, hang-up) stops within a sentence.
The timeout (`engines.tts_timeout_s`) applies to each sentence, the first including queue wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reautod.engines.base import AudioChunk, EngineHealth, EngineStats, RequestTiming
from reautod.engines.scheduler import EngineScheduler, JobContext
from reautod.errors import UnavailableError, ValidationError

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000  # a spoken reply is a few sentences; more is a runaway upstream


def validate_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"TTS text must be a string, not {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError(f"TTS text longer than {MAX_TEXT_CHARS} characters")
    return text


class PiperTTS:
    """`TextToSpeech` on a Piper voice. Build with `PiperTTS.load` (blocking: use a thread)."""

    def __init__(self, voice: PiperVoice, model_path: Path, *, queue_size: int,
                 timeout_s: float) -> None:
        self._voice: PiperVoice | None = voice
        self.model_path = model_path
        self.timeout_s = timeout_s
        self.sample_rate: int = int(voice.config.sample_rate)
        self._count_lock = threading.Lock()
        self._sentences = 0
        # espeak-ng, which phonemizes, keeps global state: one worker.
        self.scheduler = EngineScheduler("tts", queue_size=queue_size, concurrency=1)

    @classmethod
    def load(cls, path: Path, *, queue_size: int, timeout_s: float, warm_up: bool = True
             ) -> PiperTTS:
        """Load `path` and `path + ".json"`; blocking."""
        from piper import PiperVoice

        voice = PiperVoice.load(path, use_cuda=False)
        if warm_up:  # the first synthesis initialises espeak-ng and the ONNX session's buffers
            for _chunk in voice.synthesize("Hello."):
                pass
        return cls(voice, path, queue_size=queue_size, timeout_s=timeout_s)

    async def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        """Stream int16 mono audio for `text`, one chunk per sentence."""
        text = validate_text(text)
        if not text.strip():
            return
        stream = self.scheduler.stream(lambda ctx: self._speak(text, ctx), call_id=call_id,
                                       item_timeout_s=self.timeout_s)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    def _speak(self, text: str, ctx: JobContext) -> None:
        voice = self._voice
        if voice is None:
            raise UnavailableError("tts engine is closed")
        ctx.check()
        sentence_start = time.perf_counter()
        for chunk in voice.synthesize(text):
            with self._count_lock:
                self._sentences += 1
            pcm = chunk.audio_int16_bytes
            timing = RequestTiming(ctx.queue_wait_s, time.perf_counter() - sentence_start)
            ctx.emit(AudioChunk(pcm=pcm, sample_rate=int(chunk.sample_rate), timing=timing))
            sentence_start = time.perf_counter()

    @property
    def sentences_synthesized(self) -> int:
        """Sentences synthesized since load, including any a cancelled caller never read."""
        with self._count_lock:
            return self._sentences

    def health(self) -> EngineHealth:
        return self.scheduler.health("tts", str(self.model_path))

    def stats(self) -> EngineStats:
        stats = self.scheduler.stats()
        stats.extra["sentences_synthesized"] = float(self.sentences_synthesized)
        return stats

    async def close(self) -> None:
        if await self.scheduler.close():
            self._voice = None  # a worker stuck in native code keeps it alive instead
