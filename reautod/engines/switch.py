"""Named language models beside the default one: a task (the context summary, extraction) or a
stage can ask for a model by name instead of the one that speaks the replies.

A name is resolved, in order, to:
- a pool endpoint serving a model of that name (`[llm_pool] endpoints`' `model`): the pool routes
  to those endpoints only;
- an in-process GGUF of `[llm_models] local` (a path under the models directory): loaded on first
  use in a thread (on CUDA through the NVML fit check, reautod.engines.gpu_fit), kept while
  used, and unloaded least-recently-used first when more than `max_loaded` are loaded. A model
  in use (a reply streaming, a JSON answer) is never unloaded; the limit is then exceeded until
  it is idle.
An unknown name is an UnavailableError naming the models there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from reautod.engines.base import (
    ChatMessage,
    EngineHealth,
    LanguageModel,
    TokenChunk,
    refuse_named,
    relay,
)
from reautod.engines.pool import LlmPool
from reautod.errors import UnavailableError

log = logging.getLogger(__name__)


class LocalModel(LanguageModel, Protocol):
    async def close(self) -> None: ...


Loader = Callable[[Path], Awaitable[LocalModel]]


class _Loaded:
    def __init__(self, model: LocalModel) -> None:
        self.model = model
        self.held = 0  # streams and answers in progress


class ModelSwitch:
    """The default `LanguageModel` plus named ones (see the module docstring)."""

    def __init__(self, default: LanguageModel, *, local: dict[str, Path], load: Loader,
                 max_loaded: int = 1, pool: LlmPool | None = None) -> None:
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self.default = default
        self.local = dict(local)
        self.pool = pool
        self._load = load
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def inner(self) -> LanguageModel:
        """The default model (wrappers keep what they wrap as `inner`)."""
        return self.default

    @property
    def loaded(self) -> list[str]:
        """The named in-process models loaded now, least recently used first."""
        return list(self._loaded)

    def names(self) -> list[str]:
        served = sorted({e.settings.model for e in self.pool.endpoints}) if self.pool else []
        return served + sorted(n for n in self.local if n not in served)

    def using(self, name: str | None) -> LanguageModel:
        """A `LanguageModel` that asks model `name` (None: the default)."""
        return self if name is None else _Named(self, name)

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        if model is None:
            stream = self.default.stream_chat(messages, call_id=call_id, max_tokens=max_tokens)
        elif self.pool is not None and self.served_by_pool(model):
            stream = self.pool.stream_chat(messages, call_id=call_id, max_tokens=max_tokens,
                                           model=model)
        else:
            stream = self._stream_local(model, messages, call_id, max_tokens)
        async for chunk in relay(stream):
            yield chunk

    def statuses(self) -> list[tuple[str, Literal["local", "pool"], bool]]:
        """Each name: where it is served, and whether it is loaded in this process now."""
        return [(name, "pool" if self.served_by_pool(name) else "local", name in self._loaded)
                for name in self.names()]

    def served_by_pool(self, name: str) -> bool:
        """Whether a pool endpoint serves a model named `name`."""
        return self.pool is not None and any(e.settings.model == name
                                             for e in self.pool.endpoints)

    @contextlib.asynccontextmanager
    async def holding(self, name: str) -> AsyncIterator[LocalModel]:
        """In-process model `name`, loaded if it is not, and not unloaded while held."""
        entry = await self._acquire(name)
        try:
            yield entry.model
        finally:
            entry.held -= 1
            await self._evict()

    async def _stream_local(self, name: str, messages: list[ChatMessage], call_id: str,
                            max_tokens: int | None) -> AsyncIterator[TokenChunk]:
        async with self.holding(name) as model:
            async for chunk in relay(model.stream_chat(messages, call_id=call_id,
                                                       max_tokens=max_tokens)):
                yield chunk

    async def _acquire(self, name: str) -> _Loaded:
        if name not in self.local:
            raise UnavailableError(f"no language model named {name!r} (there are: "
                                   f"{', '.join(self.names()) or 'none'})")
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one load per name, however many calls ask at once
            entry = self._loaded.get(name)
            if entry is None:
                log.info("llm: loading model %s", name)
                entry = _Loaded(await self._load(self.local[name]))
                self._loaded[name] = entry
            entry.held += 1
            self._loaded.move_to_end(name)
        await self._evict()
        return entry

    async def _evict(self) -> None:
        """Unload idle models, least recently used first, while more than `max_loaded` are."""
        while len(self._loaded) > self.max_loaded:
            idle = next((n for n, e in self._loaded.items() if e.held == 0), None)
            if idle is None:
                return
            entry = self._loaded.pop(idle)
            log.info("llm: unloading model %s", idle)
            await entry.model.close()

    def health(self) -> EngineHealth:
        return self.default.health()

    def __getattr__(self, name: str) -> Any:  # what else the default engine offers
        return getattr(self.default, name)

    async def close(self) -> None:
        """Unload the named models (the default one belongs to whoever passed it)."""
        for entry in self._loaded.values():
            await entry.model.close()
        self._loaded.clear()


class _Named:
    """One name of a `ModelSwitch`, as a `LanguageModel`."""

    def __init__(self, switch: ModelSwitch, name: str) -> None:
        self.switch = switch
        self.name = name

    def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                    max_tokens: int | None = None,
                    model: str | None = None) -> AsyncIterator[TokenChunk]:
        refuse_named(model)
        return self.switch.stream_chat(messages, call_id=call_id, max_tokens=max_tokens,
                                       model=self.name)

    def health(self) -> EngineHealth:
        return self.switch.health()
