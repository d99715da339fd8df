"""Named language models (reautod.engines.switch): loading on first use, unloading the least
recently used idle one, never one mid-stream; the pool's names; a real tiny GGUF by name."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reautod.config import Settings
from reautod.dialogue.part import NamedJsonModel, extraction_model
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
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
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
    assert switch.statuses() == [("large", "pool", False), ("small", "pool", False)]
    assert await said(switch.using("large")) == "Hello there."
    assert len(standin["y"].requests) == 1 and standin["x"].requests == []
    assert await said(switch) == "Hello there."  # the default: the whole pool
    # the facts' constrained JSON by name (llm_models.extraction) goes to those endpoints too
    standin["x"].words = ['{"a": 1}']
    json_model = extraction_model(switch, "small")
    assert json_model is not None
    assert await json_model.complete_json(CHAT, {"type": "object"}, call_id="c",
                                          max_tokens=8) == '{"a": 1}'
    assert standin["x"].requests[-1]["response_format"]["schema"] == {"type": "object"}
    assert standin["x"].requests[-1]["model"] == "small"
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
        # Calls reach the named models through the context window (whose summaries "tiny"
        # writes); the reply model alone serves no name.
        windowed = engines.windowed(settings)
        named = [c async for c in windowed.stream_chat(CHAT, call_id="c", max_tokens=3,
                                                       model="tiny")]
        assert named[-1].timing is not None and engines.ready
        with pytest.raises(UnavailableError, match=r"no language model named 'huge' \(there"):
            [c async for c in windowed.stream_chat(CHAT, call_id="c", model="huge")]
        with pytest.raises(UnavailableError, match=r"no language model named 'tiny' here"):
            [c async for c in engines.llm.stream_chat(CHAT, call_id="c", model="tiny")]
        with pytest.raises(UnavailableError, match=r"no language model named 'x' here"):
            [c async for c in switch.using("tiny").stream_chat(CHAT, call_id="c", model="x")]
        # the facts' constrained JSON by the named GGUF, held while it answers
        json_model = extraction_model(switch, "tiny")
        assert isinstance(json_model, NamedJsonModel)
        schema = {"type": "object", "properties": {"owner": {"enum": ["yes", "no"]}},
                  "required": ["owner"], "additionalProperties": False}
        raw = await json_model.complete_json(CHAT, schema, call_id="c", max_tokens=12)
        assert re.match(r'\{\s*"owner"', raw), raw  # random weights held to the schema
        assert switch.loaded == ["tiny"] and extraction_model(switch, None) is not None
        assert [m.model_dump() for m in engines.report().named_models] == [
            {"name": "tiny", "where": "local", "loaded": True}]
        reply_model = engines.llm
        engines.llm = windowed  # as the daemon wraps it
        with pytest.raises(UnavailableError, match="no language model named 'huge'"):
            await extraction_model(switch, "huge").complete_json(  # type: ignore[union-attr]
                CHAT, schema, call_id="c", max_tokens=4)
    finally:
        await engines.close()
    assert switch.loaded == [] and reply_model.model is None  # the wrapped reply model too
    with pytest.raises(ValueError, match=r"llm_models.summary = 'nope' is neither"):
        Settings(llm_models={"summary": "nope"})
    with pytest.raises(ValueError, match=r"llm_models.extraction = 'nope' is neither"):
        Settings(llm_models={"extraction": "nope"})
    with pytest.raises(ValueError, match="must be unique"):
        Settings(llm_models={"local": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]})
