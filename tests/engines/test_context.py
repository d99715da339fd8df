"""The context window by tokens (reautod.engines.context): a fake tokenizer (one token a word)
and a fake summarizer that records what it was asked, over a long conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from reautod.config import Settings
from reautod.engines.base import ChatMessage, EngineHealth, EngineState, TokenChunk
from reautod.engines.context import (
    MESSAGE_OVERHEAD,
    SUMMARY_PREFIX,
    CharEstimate,
    ContextWindow,
    CountingTokenizer,
    LlamaTokenizer,
    WindowedLanguageModel,
    model_summarizer,
)
from reautod.engines.registry import EngineSet
from reautod.errors import EngineError


class Words:
    """One token per word; records every text it counted."""

    def __init__(self) -> None:
        self.counted: list[str] = []

    async def count(self, text: str) -> int:
        self.counted.append(text)
        return len(text.split())


class Summaries:
    """A summarizer that records (previous summary, turns) and answers with a fixed text."""

    def __init__(self, answer: str = "They want a garden.", fail: bool = False) -> None:
        self.calls: list[tuple[str, list[ChatMessage]]] = []
        self.answer = answer
        self.fail = fail

    async def __call__(self, previous: str, turns: Sequence[ChatMessage], call_id: str) -> str:
        self.calls.append((previous, list(turns)))
        if self.fail:
            raise EngineError("model down")
        return self.answer


SYSTEM = ChatMessage("system", "You are Sam. Facts: budget=500k, beds=3.")


def conversation(turns: int) -> list[ChatMessage]:
    chat = [SYSTEM]
    for i in range(turns):
        chat.append(ChatMessage("user", f"caller turn {i} says five words"))  # 6 words
        chat.append(ChatMessage("assistant", f"agent turn {i} answers"))  # 4 words
    return chat


def tokens(chat: Sequence[ChatMessage]) -> int:
    return sum(len(m.content.split()) + MESSAGE_OVERHEAD for m in chat)


async def test_a_chat_that_fits_goes_unchanged_and_nothing_is_summarized() -> None:
    summaries = Summaries()
    window = ContextWindow(Words(), n_ctx=1000, summarize=summaries, summary_tokens=20)
    chat = conversation(5)
    assert await window.fit(chat, call_id="c", reply_tokens=50) == chat
    assert summaries.calls == []


async def test_a_long_conversation_keeps_the_system_prompt_and_newest_turns_and_summarizes_the_rest(
        ) -> None:
    summaries = Summaries()
    window = ContextWindow(Words(), n_ctx=800, summarize=summaries, summary_tokens=20, margin=0)
    chat = conversation(40)  # 40 * 22 = 880 tokens
    fitted = await window.fit(chat, call_id="c", reply_tokens=50)
    assert fitted[0].role == "system"
    assert fitted[0].content == f"{SYSTEM.content}\n{SUMMARY_PREFIX} They want a garden."
    assert fitted[-1] == chat[-1] and fitted[-2] == chat[-2]
    kept = fitted[1:]
    assert kept == chat[len(chat) - len(kept):]  # the newest turns, whole and in order
    assert tokens(fitted) <= 800 - 50
    # the summarizer saw exactly the turns left out, oldest first, with no summary before
    (previous, turns), = summaries.calls
    assert previous == "" and turns == chat[1:len(chat) - len(kept)]


async def test_the_summary_is_reused_until_it_no_longer_fits_then_extended_not_redone() -> None:
    summaries = Summaries()
    window = ContextWindow(Words(), n_ctx=800, summarize=summaries, summary_tokens=20, margin=0)
    chat = conversation(40)
    first = await window.fit(chat, call_id="c", reply_tokens=50)
    covered = len(chat) - len(first[1:])
    chat += [ChatMessage("user", "one more"), ChatMessage("assistant", "sure")]
    again = await window.fit(chat, call_id="c", reply_tokens=50)
    assert len(summaries.calls) == 1  # the next turn fits beside the same summary
    assert again[1:] == chat[covered:]
    for i in range(20):  # the conversation goes on: the summary is extended with new turns only
        chat += [ChatMessage("user", f"more words from the caller {i}"),
                 ChatMessage("assistant", "noted")]
        fitted = await window.fit(chat, call_id="c", reply_tokens=50)
        assert tokens(fitted) <= 750 and fitted[-1] == chat[-1]
    assert 2 <= len(summaries.calls) < 10
    previous, turns = summaries.calls[1]
    assert previous == "They want a garden." and turns[0] == chat[covered]
    # another call's history is its own
    other = await window.fit(conversation(40), call_id="other", reply_tokens=50)
    assert other[0].content.endswith("They want a garden.")


async def test_a_history_that_changed_is_summarized_afresh() -> None:
    summaries = Summaries()
    window = ContextWindow(Words(), n_ctx=800, summarize=summaries, summary_tokens=20, margin=0)
    await window.fit(conversation(40), call_id="c", reply_tokens=50)
    changed = conversation(40)
    changed[1] = ChatMessage("user", "something else entirely")
    await window.fit(changed, call_id="c", reply_tokens=50)
    assert len(summaries.calls) == 2 and summaries.calls[1][0] == ""


async def test_a_failed_summary_leaves_older_turns_out_but_the_request_still_fits() -> None:
    window = ContextWindow(Words(), n_ctx=800, summarize=Summaries(fail=True), summary_tokens=20)
    chat = conversation(40)
    fitted = await window.fit(chat, call_id="c", reply_tokens=50)
    assert fitted[0] == SYSTEM and fitted[-1] == chat[-1] and tokens(fitted) <= 750


async def test_a_rambling_summary_is_cut_to_its_bound_and_a_huge_last_turn_still_goes() -> None:
    window = ContextWindow(Words(), n_ctx=800, summary_tokens=10, margin=0,
                           summarize=Summaries(answer=" ".join(["word"] * 50)))
    chat = conversation(40)
    fitted = await window.fit(chat, call_id="c", reply_tokens=50)
    summary = fitted[0].content.split(SUMMARY_PREFIX)[1]
    assert len(summary.split()) == 10
    huge = [SYSTEM, ChatMessage("user", " ".join(["x"] * 400))]
    assert (await window.fit(huge, call_id="h", reply_tokens=50))[-1] == huge[-1]


async def test_older_turns_are_summarized_in_runs_that_fit_the_model_s_window() -> None:
    summaries = Summaries()
    window = ContextWindow(Words(), n_ctx=300, summarize=summaries, summary_tokens=20, margin=0)
    await window.fit(conversation(120), call_id="c", reply_tokens=50)
    assert len(summaries.calls) > 1
    assert all(tokens(turns) <= 300 - 3 * 20 for _, turns in summaries.calls)
    assert [p for p, _ in summaries.calls[1:]] == ["They want a garden."] * (len(summaries.calls)
                                                                              - 1)


async def test_counting_caches_and_falls_back_to_a_character_estimate() -> None:
    asked: list[str] = []

    async def remote(text: str) -> int | None:
        asked.append(text)
        return None if text == "no tokenizer" else 3

    counter = CountingTokenizer(remote, cache_size=1)
    assert await counter.count("hello") == 3 and await counter.count("hello") == 3
    assert asked == ["hello"]
    assert await counter.count("no tokenizer") == await CharEstimate().count("no tokenizer") == 4
    assert await CharEstimate().count("") == 0
    await counter.count("other")
    await counter.count("hello")
    assert asked.count("hello") == 2  # the cache holds one text


class Scripted:
    """A LanguageModel that streams a fixed reply and records what it was asked."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.asked: list[tuple[list[ChatMessage], int | None]] = []

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        self.asked.append((list(messages), max_tokens))
        for word in self.reply.split(" "):
            yield TokenChunk(word + " ")
        yield TokenChunk("")

    def health(self) -> EngineHealth:
        return EngineHealth("llm", EngineState.READY, "scripted")


async def test_the_windowed_model_fits_then_asks_and_the_summary_comes_from_the_model() -> None:
    inner = Scripted("They want three beds.")
    window = ContextWindow(Words(), n_ctx=800, summary_tokens=20, margin=0,
                           summarize=model_summarizer(inner, max_tokens=20, timeout_s=5))
    llm = WindowedLanguageModel(inner, window, default_max_tokens=50)
    chat = conversation(40)
    out = [c.text async for c in llm.stream_chat(chat, call_id="c")]
    assert "".join(out).strip() == "They want three beds."
    (summary_chat, summary_cap), (reply_chat, reply_cap) = inner.asked
    assert summary_cap == 20 and summary_chat[0].role == "system"
    assert summary_chat[1].content.startswith("Caller: caller turn 0 says five words\nAgent:")
    assert reply_cap is None and reply_chat[-1] == chat[-1]
    assert reply_chat[0].content.endswith(f"{SUMMARY_PREFIX} They want three beds.")
    assert llm.health().model == "scripted" and llm.reply == "They want three beds."


async def test_the_in_process_model_is_windowed_by_its_own_tokenizer(
        test_model_overrides: dict[str, Any], test_models_dir: Path) -> None:
    settings = Settings(**test_model_overrides)
    engines = await EngineSet.load(settings, warm_up=False)
    try:
        llm: Any = engines.windowed(settings)
        assert isinstance(llm, WindowedLanguageModel)
        assert isinstance(llm.window.tokenizer, LlamaTokenizer)
        assert llm.window.n_ctx == settings.models.n_ctx
        model = engines.llm.model  # type: ignore[attr-defined]
        text = "Hello there, how are you?"
        assert await llm.window.tokenizer.count(text) == len(
            model.tokenize(text.encode(), add_bos=False, special=True)) > 0
        chunks = [c async for c in llm.stream_chat([SYSTEM, ChatMessage("user", "hi")],
                                                   call_id="c", max_tokens=4)]
        assert chunks[-1].timing is not None
        assert engines.report().llm_endpoints == []
    finally:
        await engines.close()
