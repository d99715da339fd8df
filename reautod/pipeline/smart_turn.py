"""Smart Turn v3 (the ONNX model in pipecat's wheel), loaded once and shared by every call.

pipecat's LocalSmartTurnAnalyzerV3 loads its own ONNX session per instance and runs it on a
thread of its own. The session is stateless and thread-safe, so each call gets an analyzer (its
own audio buffer) around the one session, and every call's evaluations run on one shared thread:
an evaluation is ~50 ms of CPU, and fifty calls pausing at once on fifty threads left the event
loop a fiftieth of the cores (stalls of several hundred ms in every call's audio). Queued on one
thread they wait their turn instead; a turn whose verdict is late still ends on the silence
fallback, and an evaluation cancelled while queued (the caller spoke again) never runs.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

log = logging.getLogger(__name__)

# Silence after which a turn Smart Turn called "incomplete" ends anyway.
SILENCE_FALLBACK_S = 1.5


class _SharedSmartTurn(LocalSmartTurnAnalyzerV3):
    def __init__(self, session: Any, params: SmartTurnParams, executor: ThreadPoolExecutor
                 ) -> None:
        BaseSmartTurn.__init__(self, params=params)  # skip the per-instance model load
        self._log_data = False
        self._session = session
        self._shared_executor = executor

    @property
    def _model_executor(self) -> ThreadPoolExecutor:
        return self._shared_executor  # pipecat's cleanup only shuts down a thread of its own


class SmartTurnModel:
    """The shared Smart Turn session; `analyzer()` builds a per-call analyzer around it."""

    def __init__(self, *, silence_fallback_s: float = SILENCE_FALLBACK_S) -> None:
        self._session: Any = None
        self._failed = False
        self._lock = asyncio.Lock()
        self._params = SmartTurnParams(stop_secs=silence_fallback_s)
        self._executor: ThreadPoolExecutor | None = None

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
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")
            # the thread starts with the daemon, not inside the first call
            await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    async def analyzer(self) -> BaseSmartTurn | None:
        await self.load()
        if self._session is None or self._executor is None:
            return None
        return _SharedSmartTurn(self._session, self._params, self._executor)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._session = self._executor = None
