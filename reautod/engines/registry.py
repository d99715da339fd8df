"""`EngineSet`: the three shared engines, loaded once at start-up, with per-engine health.

The daemon must start with no models at all, so a model that is not installed or fails to load
does not raise: its slot holds an engine that refuses every request with the reason, and its
health says MISSING (naming the path and the command that installs it) or FAILED (the error).
`require_ready()` is what a call attempt checks first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from reautod.config import Settings
from reautod.engines.base import (
    AudioChunk,
    ChatMessage,
    EngineHealth,
    EngineState,
    EngineStats,
    LanguageModel,
    SpeechToText,
    TextToSpeech,
    TokenChunk,
    Transcript,
)
from reautod.engines.catalog import (
    ENGINE_NAMES,
    EngineName,
    ResolvedModel,
    missing_detail,
    resolve,
)
from reautod.engines.context import (
    ContextWindow,
    CountingTokenizer,
    LlamaTokenizer,
    Tokenizer,
    WindowedLanguageModel,
    model_summarizer,
)
from reautod.engines.device import Device, resolve_device
from reautod.engines.gpu_fit import plan_for
from reautod.engines.pool import LlmPool
from reautod.engines.results import (
    EngineCounters,
    EnginesReport,
    EngineStatus,
    LlmEndpointStatus,
    NamedModelStatus,
)
from reautod.engines.scheduler import EngineObserver, EngineScheduler
from reautod.engines.switch import ModelSwitch
from reautod.errors import UnavailableError
from reautod.observability.gpu import load_nvml
from reautod.resilience.service import Resilience

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 22050  # what Piper's medium voices produce; only read when TTS is absent


class _Closable(Protocol):
    def health(self) -> EngineHealth: ...

    def stats(self) -> EngineStats: ...

    async def close(self) -> None: ...


class _Absent:
    """The engine slot of a model that is missing or failed to load: refuses with the reason."""

    def __init__(self, health: EngineHealth) -> None:
        self._health = health

    def _refuse(self) -> UnavailableError:
        return UnavailableError(f"{self._health.name} engine unavailable: {self._health.detail}")

    def health(self) -> EngineHealth:
        return self._health

    def stats(self) -> EngineStats:
        return EngineStats()

    async def close(self) -> None:
        return None


class AbsentSTT(_Absent):
    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        raise self._refuse()


class AbsentLLM(_Absent):
    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        raise self._refuse()
        yield TokenChunk("")  # unreachable; makes this an async generator like the real one


class AbsentTTS(_Absent):
    sample_rate: int = DEFAULT_SAMPLE_RATE

    async def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        raise self._refuse()
        yield AudioChunk(b"", DEFAULT_SAMPLE_RATE)  # unreachable; see AbsentLLM


def _innermost(engine: object) -> object:
    """The engine inside its wrappers (the llm circuit, the context window, the named models:
    each keeps what it wraps as `inner`)."""
    while getattr(engine, "inner", None) is not None:
        engine = engine.inner  # type: ignore[attr-defined]
    return engine


class EngineSet:
    """The shared STT, LLM and TTS engines; `stt` / `llm` / `tts` always implement the Protocols."""

    def __init__(self, stt: SpeechToText, llm: LanguageModel, tts: TextToSpeech,
                 models: dict[EngineName, ResolvedModel] | None = None,
                 device: Device = "cpu") -> None:
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.models = models or {}
        self.device = device
        self._switch: ModelSwitch | None = None

    @classmethod
    async def load(cls, settings: Settings, *, warm_up: bool = True,
                   observer: EngineObserver | None = None,
                   resilience: Resilience | None = None) -> EngineSet:
        """Load every installed model in threads (concurrently); never raises for a model problem.

        `observer` (e.g. the daemon's `Metrics`) receives every scheduler event. With
        `[llm_pool] endpoints` the LLM is the pool of those servers (its circuits in
        `resilience`), and no language model is loaded in-process.
        """
        device = await asyncio.to_thread(resolve_device, settings.models.device)
        models = {name: resolve(settings, name) for name in ENGINE_NAMES}
        loaders: dict[EngineName, Callable[[], Any]] = {
            "stt": lambda: _load_stt(settings, models["stt"], device, warm_up),
            "llm": lambda: _load_llm(settings, models["llm"], device, warm_up),
            "tts": lambda: _load_tts(settings, models["tts"], warm_up),
        }
        models_dir = settings.models_dir()
        pool = _pool(settings, resilience)
        if pool is not None:
            await pool.start()
        results = await asyncio.gather(
            *(_load_one(name, models[name], models_dir, loaders[name]) for name in ENGINE_NAMES
              if not (name == "llm" and pool is not None)))
        if pool is not None:
            results.insert(1, pool)
        stt, llm, tts = results
        log.info("engines on %s: %s", device,
                 ", ".join(f"{e.health().name}={e.health().state}" for e in results))
        engine_set = cls(stt, llm, tts, models, device)
        if observer is not None:
            engine_set.set_observer(observer)
        return engine_set

    def windowed(self, settings: Settings) -> LanguageModel:
        """This set's LLM, with the named models beside it (`named_models`), every request
        fitted to the reply model's context window by its own tokenizer (reautod.engines.
        context; a named model is fitted to the same window); with no tokenizer to count by
        (an absent reply model) the switch is returned without a window."""
        llm = self.named_models(settings)
        inner: Any = _innermost(self.llm)
        tokenizer: Tokenizer
        if isinstance(inner, LlmPool):
            tokenizer = CountingTokenizer(inner.count_tokens)
            n_ctx = min(e.settings.context_tokens for e in inner.endpoints)
        elif getattr(inner, "model", None) is not None:  # the in-process LlamaLLM
            tokenizer = LlamaTokenizer(inner.model)
            n_ctx = settings.models.n_ctx
        else:
            return llm
        e = settings.engines
        writer = llm.using(settings.llm_models.summary)
        window = ContextWindow(tokenizer, n_ctx=n_ctx, summary_tokens=e.llm_summary_tokens,
                               summarize=model_summarizer(writer, max_tokens=e.llm_summary_tokens,
                                                          timeout_s=e.llm_timeout_s))
        return WindowedLanguageModel(llm, window, default_max_tokens=e.llm_max_tokens)

    def named_models(self, settings: Settings) -> ModelSwitch:
        """This set's LLM and the named models of `[llm_models]` and the pool (built once)."""
        if self._switch is None:
            device = self.device
            models_dir = settings.models_dir()
            inner = _innermost(self.llm)

            async def load(path: Path) -> Any:
                return await asyncio.to_thread(load_gguf, settings, path, device, False)

            self._switch = ModelSwitch(
                self.llm, local={m.name: models_dir / m.path for m in settings.llm_models.local},
                load=load, max_loaded=settings.llm_models.max_loaded,
                pool=inner if isinstance(inner, LlmPool) else None)
        return self._switch

    def llm_endpoints(self) -> list[LlmEndpointStatus]:
        """Each pool endpoint's state (empty with the in-process model)."""
        inner = _innermost(self.llm)
        if not isinstance(inner, LlmPool):
            return []
        return [LlmEndpointStatus(**asdict(s)) for s in inner.statuses()]

    def set_observer(self, observer: EngineObserver | None) -> None:
        """Send the loaded engines' scheduler events (requests, timings, queue depth) there."""
        for engine in self._all():
            for name in ("scheduler", "json_scheduler"):  # the in-process LLM has both
                scheduler: EngineScheduler | None = getattr(engine, name, None)
                if scheduler is not None:
                    scheduler.observer = observer
            if isinstance(engine, LlmPool):
                engine.observer = observer

    def _all(self) -> list[_Closable]:
        return [self.stt, self.llm, self.tts]  # type: ignore[list-item]

    def health(self) -> list[EngineHealth]:
        """Per engine: MISSING / FAILED (with the reason) / READY, queue depth and failures."""
        return [engine.health() for engine in self._all()]

    @property
    def ready(self) -> bool:
        return not any(isinstance(_innermost(e), _Absent) for e in self._all())

    def require_ready(self) -> None:
        """Raise UnavailableError naming every engine that is not loaded and how to fix it."""
        absent = [e.health() for e in self._all() if isinstance(_innermost(e), _Absent)]
        if absent:
            reasons = "; ".join(f"{h.name}: {h.detail}" for h in absent)
            raise UnavailableError(f"cannot take calls, engines not ready: {reasons}")

    def stats(self) -> dict[str, EngineStats]:
        return {name: engine.stats() for name, engine in zip(ENGINE_NAMES, self._all(), strict=True)}

    def report(self) -> EnginesReport:
        """Health and stats of every engine (the `engines.status` answer)."""
        stats = self.stats()
        engines = [EngineStatus(**asdict(health), stats=EngineCounters(**asdict(stats[health.name])))
                   for health in self.health()]
        named = self._switch.statuses() if self._switch is not None else []
        return EnginesReport(ready=self.ready, device=self.device, engines=engines,
                             llm_endpoints=self.llm_endpoints(),
                             named_models=[NamedModelStatus(name=name, where=where, loaded=loaded)
                                           for name, where, loaded in named])

    def health_checks(self) -> dict[str, Callable[[], Awaitable[tuple[bool, str]]]]:
        """`stt` / `llm` / `tts` checks in the daemon's health-check shape: (ok, detail)."""

        def check_of(engine: _Closable) -> Callable[[], Awaitable[tuple[bool, str]]]:
            async def check() -> tuple[bool, str]:
                return _check_line(engine.health())

            return check

        return {name: check_of(engine) for name, engine in zip(ENGINE_NAMES, self._all(),
                                                                 strict=True)}

    async def close(self) -> None:
        if self._switch is not None:
            await self._switch.close()
        # the engines themselves: a wrapper's close (the switch's) is not theirs
        await asyncio.gather(*(_innermost(engine).close()  # type: ignore[attr-defined]
                               for engine in self._all()))


def _check_line(health: EngineHealth) -> tuple[bool, str]:
    if health.state == EngineState.READY and health.model and health.model.startswith("pool:"):
        return True, health.detail  # each endpoint: state, circuit, busy slots
    if health.state == EngineState.READY:
        return True, f"{health.model} (queue {health.queue_depth}, failures {health.failures})"
    return False, f"{health.state}: {health.detail}"


async def _load_one(name: EngineName, model: ResolvedModel, models_dir: Path,
                    loader: Callable[[], Any]) -> Any:
    if not await asyncio.to_thread(model.present):
        detail = await asyncio.to_thread(missing_detail, model, models_dir)
        log.warning("%s engine: %s", name, detail)
        return _absent(name, EngineHealth(name, EngineState.MISSING, str(model.path), detail))
    try:
        return await asyncio.to_thread(loader)
    except Exception as err:  # any load failure leaves the daemon up, with the reason in health
        detail = f"failed to load {model.path}: {type(err).__name__}: {err}"
        log.error("%s engine: %s", name, detail)
        return _absent(name, EngineHealth(name, EngineState.FAILED, str(model.path), detail))


def _pool(settings: Settings, resilience: Resilience | None) -> LlmPool | None:
    if not settings.llm_pool.endpoints:
        return None
    e = settings.engines
    return LlmPool(settings.llm_pool, resilience or Resilience(settings.resilience),
                   max_tokens=e.llm_max_tokens, temperature=e.llm_temperature,
                   timeout_s=e.llm_timeout_s)


def _absent(name: EngineName, health: EngineHealth) -> _Absent:
    kinds: dict[EngineName, type[_Absent]] = {"stt": AbsentSTT, "llm": AbsentLLM, "tts": AbsentTTS}
    return kinds[name](health)


def _load_stt(settings: Settings, model: ResolvedModel, device: Device, warm_up: bool) -> Any:
    from reautod.engines.stt import WhisperSTT

    return WhisperSTT.load(model.path, device=device, queue_size=settings.engines.queue_size,
                           timeout_s=settings.engines.stt_timeout_s, warm_up=warm_up)


def _load_llm(settings: Settings, model: ResolvedModel, device: Device, warm_up: bool) -> Any:
    return load_gguf(settings, model.path, device, warm_up)


def load_gguf(settings: Settings, path: Path, device: Device, warm_up: bool) -> Any:
    """An in-process `LlamaLLM` of the GGUF at `path` with the engine settings; blocking."""
    from reautod.engines.llm import LlamaLLM

    m = settings.models
    n_gpu_layers = m.n_gpu_layers
    if device == "cuda":  # as many layers as NVML says fit; what cannot fit is refused
        # the KV caches: a context for each reply sequence and one for the JSON side
        plan = plan_for(path, n_ctx=m.n_ctx * (m.llm_parallel + 1), requested=m.n_gpu_layers,
                        nvml=load_nvml())
        if plan is not None:
            n_gpu_layers = plan.n_gpu_layers
    return LlamaLLM.load(path, n_ctx=m.n_ctx, n_gpu_layers=n_gpu_layers,
                         n_threads=m.n_threads, queue_size=settings.engines.queue_size,
                         timeout_s=settings.engines.llm_timeout_s,
                         max_tokens=settings.engines.llm_max_tokens, gpu=device == "cuda",
                         warm_up=warm_up, temperature=settings.engines.llm_temperature,
                         sequences=m.llm_parallel)


def _load_tts(settings: Settings, model: ResolvedModel, warm_up: bool) -> Any:
    from reautod.engines.tts import PiperTTS

    return PiperTTS.load(model.path, queue_size=settings.engines.queue_size,
                         timeout_s=settings.engines.tts_timeout_s, warm_up=warm_up)
