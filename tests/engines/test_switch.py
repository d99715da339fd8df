"""Named language models (reautod.engines.switch): loading on first use, unloading the least
recently used idle one, never one mid-stream; the pool's names; a real tiny GGUF by name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reautod.config import Settings
from reautod.engines.base import ChatMessage, EngineHealth, EngineState, TokenChunk
from reautod.engines.registry import EngineSet
from reautod.engines.switch import ModelSwitch
from reautod.errors import UnavailableError
from tests.engines.openai_standin import Standin
from tests.engines.test_pool import make_pool

CHAT = [ChatMessage("user", "hi")]


class Echo:
    """A LanguageModel that answers with its name; `gate` holds it after the first chunk."""

    def __init__(self, name: str, gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.closed = False

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None) -> AsyncIterator[TokenChunk]:
        yield TokenChunk(self.name)
        if self.gate is not None:
            await self.gate.wait()
        yield TokenChunk("")

    def health(self) -> EngineHealth:
        return EngineHealth("llm", EngineState.READY, self.name)

    async def close(self) -> None:
        self.closed = True


class Loads:
    def __init__(self) -> None:
        self.loaded: list[Echo] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, path: Path) -> Echo:
        model = Echo(path.name, self.gate)
        self.loaded.append(model)
        return model


async def said(llm: Any) -> str:
    return "".join([c.text async for c in llm.stream_chat(CHAT, call_id="c")])


async def test_named_models_load_on_first_use_and_the_least_recent_idle_one_is_unloaded() -> None:
    loads = Loads()
    switch = ModelSwitch(Echo("default"), local={"fast": Path("fast.gguf"),
                                                 "smart": Path("smart.gguf")},
                         load=loads, max_loaded=1)
    assert await said(switch) == "default" and loads.loaded == []
    assert await said(switch.using("fast")) == "fast.gguf"
    assert await said(switch.using("fast")) == "fast.gguf"
    assert [m.name for m in loads.loaded] == ["fast.gguf"]  # loaded once
    assert await said(switch.using("smart")) == "smart.gguf"
    assert loads.loaded[0].closed and switch.loaded == ["smart"]
    with pytest.raises(UnavailableError, match=r"no language model named 'huge' .*fast, smart"):
        await said(switch.using("huge"))
    assert switch.health().model == "default" and switch.using(None) is switch
    await switch.close()
    assert loads.loaded[1].closed and switch.loaded == []


async def test_a_model_mid_stream_is_not_unloaded_until_its_stream_ends() -> None:
    loads = Loads()
    switch = ModelSwitch(Echo("default"), local={"a": Path("a"), "b": Path("b")}, load=loads)
    loads.gate = asyncio.Event()
    stream = switch.stream_chat(CHAT, call_id="c", model="a")
    assert (await stream.__anext__()).text == "a"
    loads.gate = None
    assert await said(switch.using("b")) == "b"
    # a is busy: the idle one goes, though more recently used
    assert not loads.loaded[0].closed and loads.loaded[1].closed and switch.loaded == ["a"]
    await stream.aclose()
    assert not loads.loaded[0].closed and switch.loaded == ["a"]


async def test_a_name_an_endpoint_serves_goes_to_the_pool() -> None:
    standin = Standin("x", "y")
    pool = make_pool(standin, models={"x": "small", "y": "large"})
    switch = ModelSwitch(pool, local={}, load=Loads(), pool=pool)
    assert switch.names() == ["large", "small"]
    assert await said(switch.using("large")) == "Hello there."
    assert len(standin["y"].requests) == 1 and standin["x"].requests == []
    assert await said(switch) == "Hello there."  # the default: the whole pool
    await pool.close()


async def test_the_engine_set_loads_a_named_gguf_and_validates_the_summary_model(
        test_model_overrides: dict[str, Any]) -> None:
    settings = Settings(**test_model_overrides, llm_models={
        "local": [{"name": "tiny", "path": "test/llama-tiny.gguf"}], "summary": "tiny"})
    engines = await EngineSet.load(settings, warm_up=False)
    try:
        switch = engines.named_models(settings)
        assert switch is engines.named_models(settings)
        chunks = [c async for c in switch.stream_chat(CHAT, call_id="c", max_tokens=3,
                                                      model="tiny")]
        assert chunks[-1].timing is not None and switch.loaded == ["tiny"]
        engines.windowed(settings)  # its summaries are written by "tiny"
    finally:
        await engines.close()
    assert switch.loaded == []
    with pytest.raises(ValueError, match=r"neither an llm_models\.local name"):
        Settings(llm_models={"summary": "nope"})
    with pytest.raises(ValueError, match="must be unique"):
        Settings(llm_models={"local": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]})
