"""The LLM pool's routing, slots, retries, circuits and cancellation, against stand-in servers
(tests/engines/openai_standin.py); the real llama.cpp servers are in test_pool_llama_server.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from reautod.config import LlmEndpointSettings, LlmPoolSettings, Settings
from reautod.engines.base import ChatMessage, EngineState, TokenChunk
from reautod.engines.pool import LlmPool, pool_from
from reautod.errors import EngineError, UnavailableError, ValidationError
from reautod.resilience.service import Resilience
from tests.engines.openai_standin import Standin

CHAT = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]


def make_pool(standin: Standin, *, max_concurrent: int = 2, attempts: int = 2,
              first_token_timeout_s: float = 5.0, models: dict[str, str] | None = None,
              resilience: Resilience | None = None) -> LlmPool:
    settings = LlmPoolSettings(
        endpoints=[LlmEndpointSettings(name=n, url=f"http://{n}/v1", max_concurrent=max_concurrent,
                                       model=(models or {}).get(n, "default"))
                   for n in standin.endpoints],
        attempts=attempts, first_token_timeout_s=first_token_timeout_s, health_interval_s=0.05)
    client = httpx.AsyncClient(transport=standin.transport)
    return LlmPool(settings, resilience or Resilience(), max_tokens=32, temperature=0.0,
                   timeout_s=10.0, client=client)


async def reply(pool: LlmPool, **kwargs: object) -> list[TokenChunk]:
    return [c async for c in pool.stream_chat(CHAT, call_id="c1", **kwargs)]  # type: ignore[arg-type]


async def first_token(stream: AsyncIterator[TokenChunk]) -> TokenChunk:
    return await stream.__anext__()


async def test_a_reply_streams_with_timing_and_prompt_tokens_and_the_request_is_openai() -> None:
    standin = Standin("a")
    pool = make_pool(standin)
    chunks = await reply(pool, max_tokens=8)
    assert "".join(c.text for c in chunks) == "Hello there."
    assert chunks[-1].text == "" and chunks[-1].timing is not None
    assert chunks[-1].prompt_tokens == 7
    sent = standin["a"].requests[0]
    assert sent["stream"] is True and sent["max_tokens"] == 8 and sent["model"] == "default"
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi"}]
    assert pool.endpoints[0].in_flight == 0 and pool.stats().completed == 1
    with pytest.raises(ValidationError):
        await reply(pool, max_tokens=0)
    await pool.close()


async def test_least_loaded_routing_spreads_concurrent_requests_and_caps_wait_for_a_slot() -> None:
    standin = Standin("a", "b")
    gate = asyncio.Event()
    for ep in standin.endpoints.values():
        ep.hold_after_first = gate
    pool = make_pool(standin, max_concurrent=1)
    s1 = pool.stream_chat(CHAT, call_id="c1")
    s2 = pool.stream_chat(CHAT, call_id="c2")
    await first_token(s1)
    await first_token(s2)
    assert [len(standin[n].requests) for n in ("a", "b")] == [1, 1]
    # both slots taken: a third request waits for one instead of overfilling an endpoint
    third = asyncio.create_task(reply(pool))
    await asyncio.sleep(0.05)
    assert not third.done() and sum(len(e.requests) for e in standin.endpoints.values()) == 2
    gate.set()
    assert [c.text async for c in s1][-1] == ""
    assert "".join(c.text for c in await third) == "Hello there."
    await s2.aclose()
    assert [e.in_flight for e in pool.endpoints] == [0, 0]
    await pool.close()


async def test_no_free_slot_before_the_deadline_is_unavailable() -> None:
    standin = Standin("a")
    standin["a"].hold_after_first = asyncio.Event()
    pool = make_pool(standin, max_concurrent=1, first_token_timeout_s=0.1)
    held = pool.stream_chat(CHAT, call_id="c1")
    await first_token(held)
    with pytest.raises(UnavailableError, match="a busy"):
        await reply(pool)
    await held.aclose()
    await pool.close()


async def test_a_failure_before_the_first_token_is_retried_on_another_endpoint() -> None:
    standin = Standin("a", "b")
    standin["a"].fail = "refuse"
    pool = make_pool(standin)
    assert "".join(c.text for c in await reply(pool)) == "Hello there."
    assert len(standin["b"].requests) == 1
    assert pool.endpoints[0].state == "down"  # marked at once, skipped from now on
    await reply(pool)
    assert len(standin["b"].requests) == 2
    await pool.close()


async def test_a_failure_after_the_first_token_is_not_retried() -> None:
    standin = Standin("a", "b")
    standin["a"].fail = "break"
    pool = make_pool(standin)
    got: list[str] = []
    with pytest.raises(EngineError, match="endpoint a failed"):
        async for chunk in pool.stream_chat(CHAT, call_id="c1"):
            got.append(chunk.text)
    assert got == ["Hello"] and standin["b"].requests == []
    assert pool.endpoints[0].state == "down" and pool.endpoints[0].in_flight == 0
    # the next reply comes from the other endpoint
    assert "".join(c.text for c in await reply(pool)) == "Hello there."
    assert len(standin["b"].requests) == 1
    await pool.close()


async def test_every_endpoint_failing_raises_the_last_failure() -> None:
    standin = Standin("a", "b")
    standin["a"].fail = standin["b"].fail = "500"
    pool = make_pool(standin)
    with pytest.raises(EngineError, match="answered 500"):
        await reply(pool)
    assert pool.stats().failures == 1
    standin["a"].fail = standin["b"].fail = "truncate"
    with pytest.raises(EngineError, match="ended the reply unfinished"):
        await reply(pool)
    await pool.close()


async def test_a_4xx_is_the_request_s_fault_not_retried_nor_counted_on_the_circuit() -> None:
    standin = Standin("a", "b")
    standin["a"].fail = "400"
    resilience = Resilience()
    pool = make_pool(standin, resilience=resilience)
    for _ in range(3):
        with pytest.raises(EngineError, match="answered 400") as caught:
            await reply(pool, model="default")
        assert caught.value.code == "llm_rejected"
        standin["b"].requests.clear()
        pool.endpoints[1].requests = 99  # keep routing on a
    assert resilience.state("llm_pool", "a") == "closed"
    await pool.close()


async def test_each_endpoint_has_its_own_circuit_and_an_open_one_is_skipped() -> None:
    standin = Standin("a", "b")
    standin["a"].fail = "garbage"
    resilience = Resilience()
    pool = make_pool(standin, resilience=resilience, attempts=1)
    for _ in range(2):  # the llm_pool policy opens after 2 failures
        pool.endpoints[1].requests = 99  # route to a
        with pytest.raises(EngineError, match="malformed JSON"):
            await reply(pool)
    assert resilience.state("llm_pool", "a") == "open"
    assert resilience.state("llm_pool", "b") == "closed"
    assert "".join(c.text for c in await reply(pool)) == "Hello there."
    status = {s.name: s for s in pool.statuses()}
    assert status["a"].circuit == "open" and status["a"].failures == 2
    assert status["b"].circuit == "closed"
    await pool.close()


async def test_closing_the_stream_mid_reply_closes_the_http_stream_and_frees_the_slot() -> None:
    standin = Standin("a")
    standin["a"].hold_after_first = asyncio.Event()
    resilience = Resilience()
    pool = make_pool(standin, max_concurrent=1, resilience=resilience)
    stream = pool.stream_chat(CHAT, call_id="c1")
    assert (await first_token(stream)).text == "Hello"
    assert pool.endpoints[0].in_flight == 1
    await stream.aclose()  # the caller barged in
    assert standin["a"].closed_early == 1
    assert pool.endpoints[0].in_flight == 0 and pool.endpoints[0].cancelled == 1
    assert pool.stats().cancelled == 1 and resilience.state("llm_pool", "a") == "closed"
    standin["a"].hold_after_first = None
    assert "".join(c.text for c in await reply(pool)) == "Hello there."  # the slot is free
    await pool.close()


async def test_cancelling_the_caller_s_task_before_the_first_token_frees_the_slot() -> None:
    standin = Standin("a")
    standin["a"].hold_first = asyncio.Event()
    pool = make_pool(standin, max_concurrent=1)
    task = asyncio.create_task(reply(pool))
    await asyncio.sleep(0.05)
    assert pool.endpoints[0].in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.endpoints[0].in_flight == 0 and standin["a"].closed_early == 1
    await pool.close()


async def test_health_checks_mark_endpoints_down_and_up_and_health_names_each() -> None:
    standin = Standin("a", "b")
    standin["b"].healthy = False
    pool = make_pool(standin)
    await pool.start()
    assert [e.state for e in pool.endpoints] == ["up", "down"]
    health = pool.health()
    assert health.state == EngineState.READY
    assert "a up, circuit closed, 0/2 busy" in health.detail and "b down" in health.detail
    standin["b"].healthy = True
    for _ in range(100):
        if pool.endpoints[1].state == "up":
            break
        await asyncio.sleep(0.02)
    assert pool.endpoints[1].state == "up"
    standin["a"].healthy = standin["b"].healthy = False
    await pool.check_all()
    assert pool.health().state == EngineState.FAILED
    with pytest.raises(UnavailableError, match="a down"):
        await reply(pool)
    await pool.close()


async def test_a_named_model_is_routed_only_to_endpoints_serving_it() -> None:
    standin = Standin("a", "b")
    pool = make_pool(standin, models={"a": "small", "b": "large"})
    await reply(pool, model="large")
    await reply(pool, model="large")
    assert len(standin["a"].requests) == 0 and len(standin["b"].requests) == 2
    assert standin["b"].requests[0]["model"] == "large"
    with pytest.raises(UnavailableError, match="no endpoint serves model 'huge'"):
        await reply(pool, model="huge")
    await pool.close()


async def test_tokens_are_counted_by_the_endpoint_s_tokenizer_when_it_has_one() -> None:
    standin = Standin("a", "b")
    standin["a"].tokenize = None
    standin["b"].tokenize = "root"
    pool = make_pool(standin)
    assert await pool.count_tokens("one two three") == 3  # a has none, b's /tokenize
    assert pool.endpoints[0].tokenize == "none" and pool.endpoints[1].tokenize == "root"
    standin["b"].tokenize = None
    pool.endpoints[1].tokenize = "unknown"
    assert await pool.count_tokens("one two") is None
    await pool.close()


def test_the_pool_is_built_only_with_endpoints_and_its_settings_are_validated() -> None:
    assert pool_from(Settings().llm_pool, Resilience(), max_tokens=8, temperature=0,
                     timeout_s=1) is None
    with pytest.raises(ValueError, match="at least one endpoint"):
        LlmPool(LlmPoolSettings(), Resilience(), max_tokens=8, temperature=0, timeout_s=1)
    with pytest.raises(ValueError, match="unique"):
        LlmPoolSettings(endpoints=[LlmEndpointSettings(name="a", url="http://x/v1"),
                                   LlmEndpointSettings(name="a", url="http://y/v1")])
    with pytest.raises(ValueError, match="http"):
        LlmEndpointSettings(name="a", url="ftp://x")
    assert LlmEndpointSettings(name="a", url="http://x/v1/").url == "http://x/v1"


async def test_the_pool_answers_constrained_json_for_the_dialogue() -> None:
    from reautod.dialogue.part import json_model_of

    standin = Standin("a")
    standin["a"].words = ['{"timeline": ', '"soon"}']
    pool = make_pool(standin)
    usage: list[tuple[str, int, int]] = []
    model = json_model_of(pool, lambda call, prompt, done, _s: usage.append((call, prompt, done)))
    assert model is not None
    schema = {"type": "object", "properties": {"timeline": {"enum": ["soon", "unknown"]}}}
    raw = await model.complete_json(CHAT, schema, call_id="c9", max_tokens=20)
    assert raw == '{"timeline": "soon"}'
    sent = standin["a"].requests[0]
    assert sent["response_format"] == {"type": "json_object", "schema": schema}
    assert sent["temperature"] == 0.0 and sent["max_tokens"] == 20
    assert usage == [("c9", 7, 2)]
    await pool.close()


class Observed:
    """An EngineObserver (the daemon's Metrics has these methods) that records what it heard."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def observe_engine_request(self, engine: str, timing: object) -> None:
        self.heard.append(f"{engine} request")

    def engine_cancelled(self, engine: str) -> None:
        self.heard.append(f"{engine} cancelled")

    def engine_failed(self, engine: str) -> None:
        self.heard.append(f"{engine} failed")

    def engine_rejected(self, engine: str) -> None:
        self.heard.append(f"{engine} rejected")

    def set_engine_queue_depth(self, engine: str, depth: int) -> None:
        pass


async def test_the_pool_reports_requests_cancellations_and_failures_to_the_metrics() -> None:
    standin = Standin("a")
    pool = make_pool(standin)
    observed = Observed()
    pool.observer = observed  # type: ignore[assignment]
    await reply(pool)
    standin["a"].hold_after_first = asyncio.Event()
    stream = pool.stream_chat(CHAT, call_id="c2")
    await first_token(stream)
    await stream.aclose()
    standin["a"].hold_after_first = None
    standin["a"].fail = "500"
    with pytest.raises(EngineError):
        await reply(pool)
    assert observed.heard == ["llm request", "llm cancelled", "llm failed"]
    await pool.close()
