"""Replies of several calls decoded together (reautod.engines.llm_batch): the words are the
model's own, a call's next turn and a new call reuse what the KV cache holds, replies share
steps, and a failure, a cancellation or a close never leaves a caller waiting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from reautod.engines.base import ChatMessage, TokenChunk
from reautod.engines.catalog import PROFILES
from reautod.engines.llm import LlamaLLM
from reautod.engines.llm_batch import BatchDecoder, ReplyEnd
from reautod.errors import EngineError, UnavailableError, ValidationError

SYSTEM = ChatMessage("system", "You are Alex, a friendly agent for Acme Realty calling "
                     "homeowners about selling their home. Keep every reply short.")


async def loaded(path: Path, **settings: Any) -> AsyncIterator[LlamaLLM]:
    llm = await asyncio.to_thread(LlamaLLM.load, path, n_gpu_layers=0, n_threads=1,
                                  queue_size=8, **settings)
    yield llm
    await llm.close()


@pytest.fixture
async def greedy(smollm2: Path) -> AsyncIterator[LlamaLLM]:
    """The real SmolLM2 at temperature 0, replies in up to three sequences."""
    async for llm in loaded(smollm2, n_ctx=1024, timeout_s=60, max_tokens=24, temperature=0.0,
                            sequences=3):
        yield llm


async def reply(llm: LlamaLLM, messages: list[ChatMessage], call_id: str,
                max_tokens: int | None = None) -> tuple[str, TokenChunk]:
    chunks = [c async for c in llm.stream_chat(messages, call_id=call_id,
                                               max_tokens=max_tokens)]
    return "".join(c.text for c in chunks), chunks[-1]


def stat(llm: LlamaLLM, name: str) -> float:
    return llm.stats().extra[name]


@pytest.mark.slow
async def test_a_reply_is_word_for_word_what_llama_cpp_python_says(greedy: LlamaLLM) -> None:
    messages = [SYSTEM, ChatMessage("user", "Hi, who is this?")]
    assert greedy.model is not None
    chat: Any = [{"role": m.role, "content": m.content} for m in messages]
    out: Any = greedy.model.create_chat_completion(messages=chat, max_tokens=24, temperature=0.0)
    expected = out["choices"][0]["message"]["content"]
    text, last = await reply(greedy, messages, "a")
    assert text == expected and "Alex" in text
    assert last.prompt_tokens is not None and last.prompt_tokens > 30


@pytest.mark.slow
async def test_the_next_turn_evaluates_only_what_is_new(greedy: LlamaLLM) -> None:
    first = [SYSTEM, ChatMessage("user", "Hi, who is this?")]
    said, last = await reply(greedy, first, "a")
    assert last.prompt_tokens is not None
    reused, evaluated = stat(greedy, "prompt_tokens_reused"), stat(greedy,
                                                                    "prompt_tokens_evaluated")
    second = [*first, ChatMessage("assistant", said),
              ChatMessage("user", "Oh. We might sell next spring.")]
    _, last2 = await reply(greedy, second, "a")
    assert last2.prompt_tokens is not None
    # the whole first prompt (system prompt and all) came from the cache
    newly_reused = stat(greedy, "prompt_tokens_reused") - reused
    assert newly_reused >= last.prompt_tokens
    assert stat(greedy, "prompt_tokens_evaluated") - evaluated == last2.prompt_tokens - newly_reused


@pytest.mark.slow
async def test_a_new_call_shares_the_system_prompt_another_call_holds(greedy: LlamaLLM) -> None:
    await reply(greedy, [SYSTEM, ChatMessage("user", "Hello?")], "a")
    reused = stat(greedy, "prompt_tokens_reused")
    text, last = await reply(greedy, [SYSTEM, ChatMessage("user", "Who is calling, please?")],
                             "b")
    assert text and last.prompt_tokens is not None
    system_tokens = len(greedy.model.tokenize(SYSTEM.content.encode())) if greedy.model else 0
    assert stat(greedy, "prompt_tokens_reused") - reused >= system_tokens


@pytest.mark.slow
async def test_replies_of_several_calls_share_steps(greedy: LlamaLLM) -> None:
    asks = ["Tell me about the weather in Paris.", "Describe your favourite food.",
            "What is the capital of Spain?"]
    replies = await asyncio.gather(*(
        reply(greedy, [SYSTEM, ChatMessage("user", ask)], f"call-{i}", max_tokens=24)
        for i, ask in enumerate(asks)))
    assert all(text for text, _ in replies)
    assert all(last.timing is not None for _, last in replies)
    assert stat(greedy, "most_replies_in_one_step") >= 2
    assert greedy.stats().completed == 3


async def test_a_prompt_longer_than_a_sequence_is_refused(test_llm: LlamaLLM) -> None:
    long = ChatMessage("user", "hello how are you " * 200)
    with pytest.raises(ValidationError, match="sequence holds 256"):
        await reply(test_llm, [long], "a")
    text, _ = await reply(test_llm, [ChatMessage("user", "hello")], "a", max_tokens=3)
    assert text


async def test_a_cancelled_reply_frees_its_only_sequence_for_the_next(test_llm: LlamaLLM
                                                                      ) -> None:
    stream: Any = test_llm.stream_chat([ChatMessage("user", "hello")], call_id="a",
                                       max_tokens=200)
    first = await anext(stream)
    assert first.text
    await stream.aclose()  # the next one may meet the sequence still held: it waits
    text, last = await reply(test_llm, [ChatMessage("user", "hello again")], "b", max_tokens=4)
    assert text and last.timing is not None
    assert test_llm.stats().cancelled == 1


async def test_a_failed_step_fails_its_replies_and_the_engine_goes_on(
        test_llm: LlamaLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = test_llm.decoder
    real = decoder._decode

    def fail_once(n: int) -> None:
        monkeypatch.setattr(decoder, "_decode", real)
        raise EngineError("llama_decode returned -3", code="llm_failed")

    monkeypatch.setattr(decoder, "_decode", fail_once)
    with pytest.raises(EngineError, match="llama_decode returned -3"):
        await reply(test_llm, [ChatMessage("user", "hello")], "a", max_tokens=4)
    text, _ = await reply(test_llm, [ChatMessage("user", "hello")], "a", max_tokens=4)
    assert text
    assert test_llm.health().failures == 1


def test_close_fails_the_reply_in_flight_and_the_one_waiting(test_gguf: Path) -> None:
    from llama_cpp import Llama

    model = Llama(model_path=str(test_gguf), n_ctx=256, n_threads=1, verbose=False)
    decoder = BatchDecoder(model, sequences=1, n_ctx_seq=256, threads=1, warm_up=False)
    outcomes: list[Any] = []
    in_step, release = threading.Event(), threading.Event()

    def holding_the_driver() -> bool:  # the driver asks before each step: it waits here
        in_step.set()
        release.wait(10)
        return False

    def ask(cancelled: Any) -> None:
        items: Iterator[str | ReplyEnd] = decoder.submit(
            model.tokenize(b"hello"), call_id="a", limit=4, temperature=0.6, cancelled=cancelled)
        try:
            list(items)
        except UnavailableError as err:
            outcomes.append(err)

    in_flight = threading.Thread(target=ask, args=(holding_the_driver,))
    in_flight.start()
    assert in_step.wait(10)
    waiting = threading.Thread(target=ask, args=(lambda: False,))
    waiting.start()
    wait_for(lambda: len(decoder._waiting) == 1)
    closed: list[bool] = []
    closer = threading.Thread(target=lambda: closed.append(decoder.close()))
    closer.start()
    wait_for(lambda: decoder._closed)
    release.set()
    for thread in (closer, in_flight, waiting):
        thread.join(10)
    assert closed == [True]
    assert [type(o) for o in outcomes] == [UnavailableError, UnavailableError]
    with pytest.raises(UnavailableError):
        list(decoder.submit([1, 2], call_id="b", limit=1, temperature=0.0,
                            cancelled=lambda: False))
    model.close()


def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def test_gguf(test_models_dir: Path) -> Path:
    return PROFILES["test"]["llm"].path_in(test_models_dir)


@pytest.fixture
async def test_llm(test_gguf: Path) -> AsyncIterator[LlamaLLM]:
    """The random-weight test model with one 256-token sequence."""
    async for llm in loaded(test_gguf, n_ctx=256, timeout_s=30, max_tokens=200, warm_up=False,
                            sequences=1):
        yield llm
