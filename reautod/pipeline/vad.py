"""Silero VAD (the ONNX model in pipecat's wheel), loaded once and shared by every call.

pipecat's SileroVADAnalyzer loads its own ONNX session per instance (~70 ms of CPU at every
call start). The session is thread-safe; the recurrent state is not, so each call gets its own
SileroOnnxModel state around the one session.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

VAD_PARAMS = VADParams(stop_secs=0.2)  # Smart Turn decides the rest of the endpointing


class _SharedSileroVAD(SileroVADAnalyzer):
    def __init__(self, session: Any, params: VADParams) -> None:
        VADAnalyzer.__init__(self, params=params)  # skip the per-instance model load
        model = SileroOnnxModel.__new__(SileroOnnxModel)
        model.session = session
        model.sample_rates = [8000, 16000]
        model.reset_states()
        self._model = model
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        # A 20 ms frame rarely completes a 32 ms window: only hop to the model's thread when
        # there is a window to score (the hop costs more than buffering).
        if len(self._vad_buffer) + len(buffer) < self._vad_frames_num_bytes:
            self._vad_buffer += buffer
            return self._vad_state
        return await super().analyze_audio(buffer)


class SileroModel:
    """The shared Silero session; `analyzer()` builds a per-call VAD around it."""

    def __init__(self, params: VADParams = VAD_PARAMS) -> None:
        self._params = params
        self._session: Any = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._lock:
            if self._session is None:
                prototype = await asyncio.to_thread(SileroVADAnalyzer, params=self._params)
                self._session = prototype._model.session
                await prototype.cleanup()

    async def analyzer(self) -> SileroVADAnalyzer:
        await self.load()
        return _SharedSileroVAD(self._session, self._params)

    async def close(self) -> None:
        self._session = None
