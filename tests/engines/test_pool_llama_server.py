"""The LLM pool against two real `python -m llama_cpp.server` processes serving the small
profile's SmolLM2 (tiny context, one thread each, a few tokens per reply): least-loaded routing,
an endpoint killed mid-reply, a reply closed mid-stream, the server's tokenizer, and a long
conversation fitted to the window by tokens."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reautod.config import LlmEndpointSettings, LlmPoolSettings, Settings
from reautod.control.client import ControlClient
from reautod.engines.base import ChatMessage
from reautod.engines.context import (
    SUMMARY_PREFIX,
    ContextWindow,
    CountingTokenizer,
    LlamaTokenizer,
    WindowedLanguageModel,
    model_summarizer,
)
from reautod.engines.pool import LlmPool
from reautod.engines.registry import EngineSet
from reautod.errors import EngineError
from reautod.resilience.service import Resilience
from tests.fixtures.services import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("sse_starlette") is None
        or importlib.util.find_spec("starlette_context") is None,
        reason="llama-cpp-python's server extra (sse-starlette, starlette-context) is not installed"),
]

N_CTX = 512
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]


def start_server(name: str, model: Path, log: Path) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_ctx", str(N_CTX),
         "--n_threads", "1", "--n_threads_batch", "1", "--host", "127.0.0.1", "--port", str(port),
         "--model_alias", "smollm2"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return Server(name, f"http://127.0.0.1:{port}/v1", process)


def wait_up(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"llama_cpp.server {server.name} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server {server.name} did not come up: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def servers(small_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Server]]:
    logs = tmp_path_factory.mktemp("llama-servers")
    started = {n: start_server(n, small_models_dir / GGUF, logs / f"{n}.log") for n in ("a", "b")}
    try:
        for name, server in started.items():
            wait_up(server, logs / f"{name}.log")
        yield started
    finally:
        for server in started.values():
            server.process.terminate()
        for server in started.values():
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def pool_of(servers: dict[str, Server], *names: str, max_concurrent: int = 2,
            max_tokens: int = 12) -> LlmPool:
    settings = LlmPoolSettings(endpoints=[
        LlmEndpointSettings(name=n, url=servers[n].url, model="smollm2",
                            max_concurrent=max_concurrent, context_tokens=N_CTX)
        for n in names], first_token_timeout_s=60, health_interval_s=60)
    return LlmPool(settings, Resilience(), max_tokens=max_tokens, temperature=0.0, timeout_s=60)


CHAT = [ChatMessage("system", "You are a friendly assistant."),
        ChatMessage("user", "Tell me about the sea.")]


async def test_least_loaded_routing_spreads_two_concurrent_replies(
        servers: dict[str, Server]) -> None:
    pool = pool_of(servers, "a", "b")
    await pool.start()
    streams = [pool.stream_chat(CHAT, call_id=f"c{i}", max_tokens=4) for i in range(2)]
    firsts = await asyncio.gather(*(s.__anext__() for s in streams))
    assert all(f.text for f in firsts)
    assert [(e.name, e.requests, e.in_flight) for e in pool.endpoints] == [("a", 1, 1),
                                                                          ("b", 1, 1)]
    rests = [[c async for c in s] for s in streams]
    assert all(r[-1].timing is not None for r in rests)
    assert [e.in_flight for e in pool.endpoints] == [0, 0]
    await pool.close()


async def test_a_reply_closed_mid_stream_frees_the_slot(servers: dict[str, Server]) -> None:
    pool = pool_of(servers, "b", max_concurrent=1)
    stream = pool.stream_chat(CHAT, call_id="c1", max_tokens=12)
    assert (await stream.__anext__()).text
    assert pool.endpoints[0].in_flight == 1
    await stream.aclose()  # barge-in
    assert pool.endpoints[0].in_flight == 0 and pool.endpoints[0].cancelled == 1
    # the one slot is free and the server serves the next reply
    chunks = [c async for c in pool.stream_chat(CHAT, call_id="c2", max_tokens=4)]
    assert "".join(c.text for c in chunks).strip()
    assert pool.endpoints[0].requests == 2
    await pool.close()


async def test_the_server_answers_json_of_the_schema_for_the_dialogue(
        servers: dict[str, Server]) -> None:
    pool = pool_of(servers, "b")
    schema = {"type": "object", "properties": {"wants": {"enum": ["buy", "sell", "unknown"]}},
              "required": ["wants"], "additionalProperties": False}
    raw = await pool.json_model().complete_json(
        [ChatMessage("user", "Caller: we want to sell our house. What do they want?")], schema,
        call_id="j", max_tokens=12)
    assert json.loads(raw)["wants"] in ("buy", "sell", "unknown")
    await pool.close()


async def test_the_server_s_tokenizer_counts_as_the_model_itself_does(
        servers: dict[str, Server], small_models_dir: Path) -> None:
    from llama_cpp import Llama

    pool = pool_of(servers, "a")
    text = "Hello! I'm calling about the house on Elm Street, 3 bedrooms."
    local = Llama(model_path=str(small_models_dir / GGUF), vocab_only=True, verbose=False)
    try:
        expected = await LlamaTokenizer(local).count(text)
    finally:
        local.close()
    assert expected > 5
    assert await pool.count_tokens(text) == expected
    assert pool.endpoints[0].tokenize == "extras"
    await pool.close()


async def test_a_long_conversation_is_fitted_to_the_server_s_window_with_a_summary(
        servers: dict[str, Server]) -> None:
    pool = pool_of(servers, "a")
    chat = [ChatMessage("system", "You are Sam from Acme Homes. Known facts: budget=500k.")]
    for i in range(20):
        chat.append(ChatMessage("user", f"Turn {i}: we were thinking about a place with a "
                                         "garden near the school, maybe next spring."))
        chat.append(ChatMessage("assistant", "That sounds lovely, tell me more."))
    chat.append(ChatMessage("user", "So what would you suggest?"))
    tokenizer = CountingTokenizer(pool.count_tokens)
    assert sum([await tokenizer.count(m.content) for m in chat]) > N_CTX
    # (unfitted, llama.cpp's Python server ends the reply with nothing, and then stalls for
    # seconds: the pool's unit tests cover that answer)
    window = ContextWindow(tokenizer, n_ctx=N_CTX, summary_tokens=16,
                           summarize=model_summarizer(pool, max_tokens=16, timeout_s=60))
    fitted = await window.fit(chat, call_id="long", reply_tokens=8)
    assert fitted[0].role == "system" and fitted[0].content.startswith(chat[0].content)
    assert SUMMARY_PREFIX in fitted[0].content and fitted[-1] == chat[-1]
    llm = WindowedLanguageModel(pool, window, default_max_tokens=8)
    chunks = [c async for c in llm.stream_chat(chat, call_id="long", max_tokens=8)]
    assert chunks[-1].prompt_tokens is None or chunks[-1].prompt_tokens < N_CTX
    assert "".join(c.text for c in chunks).strip()
    await pool.close()


async def test_the_engine_set_uses_the_pool_when_endpoints_are_configured(
        servers: dict[str, Server], test_model_overrides: dict[str, Any]) -> None:
    settings = Settings(**test_model_overrides, llm_pool={"endpoints": [
        {"name": n, "url": servers[n].url, "model": "smollm2", "context_tokens": N_CTX}
        for n in ("a", "b")]})
    engines = await EngineSet.load(settings, warm_up=False, resilience=Resilience())
    try:
        assert isinstance(engines.llm, LlmPool) and engines.ready
        assert [e.state for e in engines.report().llm_endpoints] == ["up", "up"]
        ok, detail = await engines.health_checks()["llm"]()
        assert ok and "a up, circuit closed, 0/2 busy" in detail
        llm: Any = engines.windowed(settings)
        assert isinstance(llm, WindowedLanguageModel) and llm.window.n_ctx == N_CTX
        chunks = [c async for c in llm.stream_chat(CHAT, call_id="c", max_tokens=4)]
        assert "".join(c.text for c in chunks).strip()
    finally:
        await engines.close()


def test_the_daemon_uses_the_pool_and_health_and_engines_status_name_each_endpoint(
        servers: dict[str, Server], daemon_factory: Any, test_models_dir: Path) -> None:
    d = daemon_factory()
    endpoints = "".join(
        f'[[llm_pool.endpoints]]\nname = "{n}"\nurl = "{servers[n].url}"\nmodel = "smollm2"\n'
        f"context_tokens = {N_CTX}\n" for n in ("a", "b"))
    d.config_path.write_text(
        f'state_dir = "{d.workdir / "state"}"\n[http]\nport = 0\n[metrics]\nport = 0\n'
        f'[models]\ndir = "{test_models_dir}"\nprofile = "test"\ndevice = "cpu"\n{endpoints}')
    d.start()
    d.wait_ready()
    health = d.ctl("health")
    assert "a up, circuit closed, 0/2 busy; b up, circuit closed, 0/2 busy" in health.stdout, (
        health.stdout + health.stderr)

    async def status() -> dict[str, Any]:
        async with ControlClient(d.socket_path) as client:
            result: dict[str, Any] = await client.call("engines.status")
            return result

    report = asyncio.run(status())
    assert [(e["name"], e["url"], e["state"], e["circuit"]) for e in report["llm_endpoints"]] == [
        ("a", servers["a"].url, "up", "closed"), ("b", servers["b"].url, "up", "closed")]
    llm = next(e for e in report["engines"] if e["name"] == "llm")
    assert llm["state"] == "ready" and llm["model"].startswith("pool: a=")


async def test_an_endpoint_killed_mid_reply_fails_that_reply_and_the_next_comes_from_another(
        servers: dict[str, Server]) -> None:
    """Last in the module: it kills server a."""
    pool = pool_of(servers, "a", "b", max_tokens=300)
    pool.endpoints[1].requests = 1  # a is chosen first
    # a long reply: the server is killed a token or two into it
    stream = pool.stream_chat([ChatMessage("user", "Count from one to fifty in words.")],
                              call_id="c1")
    assert (await stream.__anext__()).text
    assert pool.endpoints[0].in_flight == 1
    servers["a"].process.send_signal(signal.SIGKILL)
    servers["a"].process.wait(10)
    with pytest.raises(EngineError, match="endpoint a"):
        async for _ in stream:
            pass
    assert pool.endpoints[0].state == "down" and pool.endpoints[0].in_flight == 0
    chunks = [c async for c in pool.stream_chat(CHAT, call_id="c2", max_tokens=4)]
    assert "".join(c.text for c in chunks).strip()
    assert pool.endpoints[1].requests == 2  # b served the next reply
    await pool.close()
