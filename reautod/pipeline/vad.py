"""Silero VAD (the ONNX model in pipecat's wheel), loaded once and shared by every call.

pipecat's SileroVADAnalyzer loads its own ONNX session per instance (~70 ms of CPU at every
call start) and scores each call's 32 ms windows one by one on a thread of its own. Here every
call's analyzer keeps its own recurrent state (pipecat's SileroOnnxModel around the one shared
session), and a `SileroBatcher` scores the windows of all calls that are waiting together, in one
ONNX run on one thread: with many calls, one thread hop and one run per batch instead of one per
window (a window costs ~100 us alone, ~40 us in a batch of eight). pipecat's VADAnalyzer still
owns the speech/silence state machine, the volume gate and when the model state is reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

log = logging.getLogger(__name__)

VAD_PARAMS = VADParams(stop_secs=0.2)  # Smart Turn decides the rest of the endpointing
_RATE = 8000  # Silero runs at the phone's rate: 256-sample windows, 32 samples of context
_CONTEXT = 32

_Request = tuple[SileroOnnxModel, bytes, "asyncio.Future[float]"]


@runtime_checkable
class EarlyVoice(Protocol):
    """A VAD that can say a window sounded like speech before its state machine does."""

    @property
    def voiced_now(self) -> bool: ...


class SileroBatcher:
    """Scores 32 ms windows for many calls: whatever is waiting goes into the next ONNX run.

    No timer: a window that arrives while a batch runs waits for that batch to finish and goes
    in the next, so one call alone pays one run, and many calls share runs.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self._pending: list[_Request] = []
        self._drainer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silero")
        self.runs = 0
        self.windows = 0

    async def start(self) -> None:
        """Start the worker thread now, with the daemon, rather than on the first call."""
        await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    async def score(self, model: SileroOnnxModel, window: bytes) -> float:
        """Speech confidence of one window, advancing `model`'s recurrent state."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pending.append((model, window, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="silero-batches")
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                scores = await loop.run_in_executor(self._executor, self._run, batch)
            except Exception as err:  # a broken run must not stall calls: nobody hears speech
                log.error("Silero VAD run failed (%s: %s)", type(err).__name__, err)
                scores = [0.0] * len(batch)
            for (_, _, future), score in zip(batch, scores, strict=True):
                if not future.done():
                    future.set_result(score)

    def _run(self, batch: list[_Request]) -> list[float]:
        """One ONNX run over the batch (worker thread): each call's context and state in, out."""
        audio = np.stack([np.frombuffer(w, np.int16) for _, w, _ in batch]).astype(np.float32)
        audio /= 32768.0
        models = [m for m, _, _ in batch]
        for m in models:
            if m._context.shape[-1] != _CONTEXT:  # fresh or just reset
                m._context = np.zeros((1, _CONTEXT), dtype=np.float32)
        x = np.concatenate([np.concatenate([m._context for m in models]), audio], axis=1)
        state = np.concatenate([m._state for m in models], axis=1)
        out, state = self._session.run(
            None, {"input": x, "state": state, "sr": np.array(_RATE, dtype=np.int64)})
        for i, m in enumerate(models):
            m._state = state[:, i:i + 1]
            m._context = x[i:i + 1, -_CONTEXT:]
        self.runs += 1
        self.windows += len(batch)
        scores: npt.NDArray[np.float32] = out[:, 0]
        return [float(s) for s in scores]

    async def close(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        self._executor.shutdown(wait=False)


class _BatchedSileroVAD(SileroVADAnalyzer):
    """One call's VAD: windows scored through the shared batcher, state machine from pipecat."""

    def __init__(self, batcher: SileroBatcher, session: Any, params: VADParams) -> None:
        VADAnalyzer.__init__(self, params=params)  # skip the per-instance model load
        model = SileroOnnxModel.__new__(SileroOnnxModel)
        model.session = session
        model.sample_rates = [8000, 16000]
        model.reset_states()
        self._model = model
        self._batcher = batcher
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self._scores: deque[float] = deque()
        self._last_confidence = 0.0

    def set_sample_rate(self, sample_rate: int) -> None:
        if sample_rate != _RATE:
            raise ValueError(f"the call VAD runs at {_RATE} Hz, not {sample_rate}")
        super().set_sample_rate(sample_rate)

    async def analyze_audio(self, buffer: bytes) -> VADState:
        size = self._vad_frames_num_bytes
        waiting = len(self._vad_buffer) + len(buffer)
        if waiting < size:  # a 20 ms frame rarely completes a 32 ms window
            self._vad_buffer += buffer
            return self._vad_state
        audio = bytes(self._vad_buffer) + buffer
        for start in range(0, waiting - size + 1, size):
            score = await self._batcher.score(self._model, audio[start:start + size])
            self._maybe_reset_model(score)  # as pipecat does after every window it scores
            self._scores.append(score)
        # pipecat's analyzer cuts the same windows and asks voice_confidence for each in order
        return self._run_analyzer(buffer)

    def voice_confidence(self, buffer: bytes) -> float:
        self._last_confidence = self._scores.popleft()
        return self._last_confidence

    @property
    def voiced_now(self) -> bool:
        """The last window passes both of the VAD's gates with the volume of its rolling 0.4 s
        window as it is, not exponentially smoothed: at a clean onset that is 3 or 4 windows
        (~120 ms) before the state machine says STARTING."""
        return (self._last_confidence >= self._params.confidence
                and self._volume_tracker.volume >= self._params.min_volume)


class SileroModel:
    """The shared Silero session and batcher; `analyzer()` builds a per-call VAD around them."""

    def __init__(self, params: VADParams = VAD_PARAMS) -> None:
        self._params = params
        self._session: Any = None
        self._batcher: SileroBatcher | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._lock:
            if self._session is None:
                prototype = await asyncio.to_thread(SileroVADAnalyzer, params=self._params)
                self._session = prototype._model.session
                await prototype.cleanup()
                self._batcher = SileroBatcher(self._session)
                await self._batcher.start()

    async def analyzer(self) -> SileroVADAnalyzer:
        await self.load()
        assert self._batcher is not None  # set by load()
        return _BatchedSileroVAD(self._batcher, self._session, self._params)

    @property
    def batcher(self) -> SileroBatcher | None:
        return self._batcher

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        self._session = self._batcher = None
