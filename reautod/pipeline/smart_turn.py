"""Smart Turn v3 (the ONNX model in pipecat's wheel), loaded once and shared by every call.

pipecat's LocalSmartTurnAnalyzerV3 loads its own ONNX session per instance; the session is
stateless and thread-safe, so each call gets an analyzer (its own audio buffer and thread)
around the one session.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

log = logging.getLogger(__name__)

# Silence after which a turn Smart Turn called "incomplete" ends anyway.
SILENCE_FALLBACK_S = 1.5


class _SharedSmartTurn(LocalSmartTurnAnalyzerV3):
    def __init__(self, session: Any, params: SmartTurnParams) -> None:
        BaseSmartTurn.__init__(self, params=params)  # skip the per-instance model load
        self._log_data = False
        self._session = session


class SmartTurnModel:
    """The shared Smart Turn session; `analyzer()` builds a per-call analyzer around it."""

    def __init__(self, *, silence_fallback_s: float = SILENCE_FALLBACK_S) -> None:
        self._session: Any = None
        self._failed = False
        self._lock = asyncio.Lock()
        self._params = SmartTurnParams(stop_secs=silence_fallback_s)

    async def load(self) -> None:
        async with self._lock:
            if self._session is not None or self._failed:
                return
            try:
                prototype = await asyncio.to_thread(LocalSmartTurnAnalyzerV3)
            except Exception:  # a broken wheel must not stop calls: VAD silence still ends turns
                log.exception("Smart Turn v3 failed to load; turns end on silence alone")
                self._failed = True
                return
            self._session = prototype._session

    async def analyzer(self) -> BaseSmartTurn | None:
        await self.load()
        if self._session is None:
            return None
        return _SharedSmartTurn(self._session, self._params)

    async def close(self) -> None:
        self._session = None
