"""GPU out of memory: fewer concurrent calls, never a crash.

An engine request that runs out of memory (torch's `OutOfMemoryError`, CTranslate2's and
llama.cpp's "out of memory" / "failed to allocate" messages, a `MemoryError`; the engine
scheduler wraps them in an `EngineError` whose cause is kept, so the whole chain is read) is
turned into `EngineError(code="engine_out_of_memory")`: the turn fails like any engine failure
(the caller hears the apology, or the local voice) and the call goes on. The box then takes
fewer calls: `AdmissionLimit` lowers the live-call limit to one less than the calls live when
memory ran out (never under one), the call manager refuses calls over it, the dialer places
none past it, and it rises back by one call per `recover_s` without another such error.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from reautod.engines.base import (
    AudioChunk,
    ChatMessage,
    LanguageModel,
    SpeechToText,
    TextToSpeech,
    TokenChunk,
    Transcript,
)
from reautod.errors import EngineError

log = logging.getLogger(__name__)

OUT_OF_MEMORY = "engine_out_of_memory"
# lower-cased fragments of the errors PyTorch, CTranslate2, llama.cpp, ONNX Runtime and CUDA raise
_MESSAGES = ("out of memory", "outofmemory", "cuda_error_out_of_memory",
             "cublas_status_alloc_failed", "failed to allocate", "cudaerrormemoryallocation",
             "unable to allocate", "insufficient memory")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err`, or what caused it, is an allocation failure."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, EngineError) and current.code == OUT_OF_MEMORY:
            return True
        if isinstance(current, MemoryError) or type(current).__name__ == "OutOfMemoryError":
            return True
        text = str(current).lower()
        if any(fragment in text for fragment in _MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


class AdmissionLimit:
    """How many live calls the box takes now (see the module docstring)."""

    def __init__(self, configured: Callable[[], int], *, recover_s: float,
                 on_change: Callable[[int, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.configured = configured  # calls.max_concurrent in effect (a reload changes it)
        self.recover_s = recover_s
        self.on_change = on_change
        self.clock = clock
        self._ceiling: int | None = None  # None: not lowered
        self._lowered_at = 0.0
        self._told: int | None = None  # the limit on_change heard last

    def limit(self) -> int:
        configured = self.configured()
        if self._ceiling is None:
            return configured
        risen = self._ceiling + math.floor((self.clock() - self._lowered_at) / self.recover_s)
        if risen >= configured:
            self._ceiling = None
            self._changed(configured, "recovered")
            return configured
        if risen != self._told:
            self._changed(risen, "recovering")
        return risen

    def lowered(self) -> bool:
        return self.limit() < self.configured()

    def out_of_memory(self, engine: str, live_calls: int) -> int:
        """An engine ran out of memory with `live_calls` calls live: take fewer from now on."""
        limit = max(1, min(self.limit(), live_calls) - 1)
        self._ceiling, self._lowered_at = limit, self.clock()
        log.warning("%s engine ran out of memory with %d live calls: taking at most %d from now "
                    "on (one more each %g s without another)", engine, live_calls, limit,
                    self.recover_s)
        self._changed(limit, f"{engine} out of memory")
        return limit

    def _changed(self, limit: int, reason: str) -> None:
        self._told = limit
        if self.on_change is not None:
            self.on_change(limit, reason)


OnOutOfMemory = Callable[[str], None]
_Item = TypeVar("_Item")


def _checked(engine: str, err: Exception, on_oom: OnOutOfMemory) -> Exception:
    """The error to raise instead of `err`: an out-of-memory one becomes a typed EngineError."""
    if not is_out_of_memory(err):
        return err
    on_oom(engine)
    if isinstance(err, EngineError) and err.code == OUT_OF_MEMORY:
        return err
    return EngineError(f"{engine} engine ran out of memory: {err}", code=OUT_OF_MEMORY)


class _Guarded:
    def __init__(self, inner: Any, on_oom: OnOutOfMemory) -> None:
        self.inner = inner
        self.on_oom = on_oom

    def __getattr__(self, name: str) -> Any:  # health, begin_call, set_tier, scheduler, ...
        return getattr(self.inner, name)


class MemoryGuardedSTT(_Guarded):
    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        try:
            transcript: Transcript = await self.inner.transcribe(audio, call_id=call_id)
        except Exception as err:
            raise _checked("stt", err, self.on_oom) from err
        return transcript


async def _guarded(engine: str, stream: AsyncIterator[_Item],
                   on_oom: OnOutOfMemory) -> AsyncIterator[_Item]:
    try:
        async for item in stream:
            yield item
    except Exception as err:
        raise _checked(engine, err, on_oom) from err
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


class MemoryGuardedLLM(_Guarded):
    def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                    max_tokens: int | None = None,
                    model: str | None = None) -> AsyncIterator[TokenChunk]:
        return _guarded("llm", self.inner.stream_chat(messages, call_id=call_id,
                                                      max_tokens=max_tokens, model=model),
                        self.on_oom)


class MemoryGuardedTTS(_Guarded):
    def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        return _guarded("tts", self.inner.synthesize(text, call_id=call_id), self.on_oom)


class MemoryGuardedEngines:
    """The pipeline's engines with out-of-memory errors typed and reported to `on_oom`
    (the engine's name); everything else of the inner set passes through."""

    def __init__(self, inner: Any, on_oom: OnOutOfMemory) -> None:
        self.inner = inner
        self.stt: SpeechToText = MemoryGuardedSTT(inner.stt, on_oom)
        self.llm: LanguageModel = MemoryGuardedLLM(inner.llm, on_oom)
        self.tts: TextToSpeech = MemoryGuardedTTS(inner.tts, on_oom)

    def require_ready(self) -> None:
        self.inner.require_ready()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
