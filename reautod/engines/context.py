"""The context window by tokens: each request is fitted to its model's window before it goes out.

Counting uses the model's own tokenizer (`LlamaTokenizer` for the in-process model, the
endpoint's `/tokenize` for the pool, a character estimate only where neither exists), per message
plus a fixed overhead for the chat template's role markers.

Invariants of `ContextWindow.fit`:
- every system message is kept, whole and first (the system prompt, and whatever the agent
  keeps there, such as the facts it extracted); they are merged into one;
- the newest turns are kept whole, as many as fit beside the reply's `max_tokens`;
- older turns are not dropped silently: they are compressed into a summary written by the model
  itself (bounded: `summary_tokens`), which goes into the system message. A call's summary is
  kept and extended as more turns age out, so each turn is summarized once;
- if the summary cannot be written (the model failed or was slow), the older turns are left out
  and the request still goes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reautod.engines.base import ChatMessage, EngineHealth, LanguageModel, TokenChunk, relay
from reautod.errors import ReautodError

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

MESSAGE_OVERHEAD = 6  # role markers of a chat template (ChatML: <|im_start|>role\n ... <|im_end|>\n)
REFILL = 0.6  # after summarizing, the kept turns fill at most this share of the room
CHARS_PER_TOKEN = 3.5  # English text with a BPE tokenizer, rounded down (over-counts a little)
SUMMARY_PREFIX = "Earlier in this call (summary):"
SUMMARY_INSTRUCTIONS = ("Summarize this phone conversation so far in at most three short "
                        "sentences: what the caller said, asked and agreed to. Names, numbers, "
                        "dates and times exactly as said.")


class Tokenizer(Protocol):
    async def count(self, text: str) -> int: ...


class CharEstimate:
    """Tokens estimated from characters, for a server that cannot tokenize."""

    async def count(self, text: str) -> int:
        return -(-len(text) * 10 // int(CHARS_PER_TOKEN * 10)) if text else 0


class LlamaTokenizer:
    """The in-process model's own tokenizer (its vocabulary only: safe beside generation)."""

    def __init__(self, model: Llama) -> None:
        self._model = model

    async def count(self, text: str) -> int:
        data = text.encode()
        if len(data) > 4096:  # long text: off the loop
            return await asyncio.to_thread(self._count, data)
        return self._count(data)

    def _count(self, data: bytes) -> int:
        return len(self._model.tokenize(data, add_bos=False, special=True))


class CountingTokenizer:
    """A tokenizer function with a fallback (None: it could not count) and a bounded cache."""

    def __init__(self, count: Callable[[str], Awaitable[int | None]],
                 fallback: Tokenizer | None = None, cache_size: int = 4096) -> None:
        self._count = count
        self._fallback = fallback or CharEstimate()
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._size = cache_size

    async def count(self, text: str) -> int:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        counted = await self._count(text)
        if counted is None:
            return await self._fallback.count(text)
        self._cache[text] = counted
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return counted


Summarize = Callable[[str, Sequence[ChatMessage], str], Awaitable[str]]


@dataclass
class _Summary:
    covered: int  # turns (non-system messages) it covers, from the first
    digest: str  # of those turns: a different history is summarized afresh
    text: str


def _digest(turns: Sequence[ChatMessage]) -> str:
    h = hashlib.sha256()
    for m in turns:
        h.update(f"{m.role}\0{m.content}\0".encode())
    return h.hexdigest()


class ContextWindow:
    """Fits chats to `n_ctx` tokens (see the module docstring); one per model, every call."""

    def __init__(self, tokenizer: Tokenizer, *, n_ctx: int, summarize: Summarize | None,
                 summary_tokens: int = 96, margin: int = 16, max_calls: int = 1024) -> None:
        self.tokenizer = tokenizer
        self.n_ctx = n_ctx
        self.summarize = summarize
        self.summary_tokens = summary_tokens
        self.margin = margin
        self._summaries: OrderedDict[str, _Summary] = OrderedDict()
        self._max_calls = max_calls

    async def _size(self, message: ChatMessage) -> int:
        return await self.tokenizer.count(message.content) + MESSAGE_OVERHEAD

    async def fit(self, messages: Sequence[ChatMessage], *, call_id: str,
                  reply_tokens: int) -> list[ChatMessage]:
        """The chat to send: system kept, newest turns kept, older ones summarized."""
        system = [m for m in messages if m.role == "system"]
        turns = [m for m in messages if m.role != "system"]
        budget = self.n_ctx - reply_tokens - self.margin
        sizes = [await self._size(m) for m in turns]
        pinned = ChatMessage("system", "\n".join(m.content for m in system)) if system else None
        pinned_size = await self._size(pinned) if pinned is not None else 0
        if pinned_size + sum(sizes) <= budget:
            return list(messages)
        head_size = pinned_size + self.summary_tokens + 8  # the summary's bound and prefix
        known = self._known(call_id, turns)
        if known is not None and head_size + sum(sizes[known.covered:]) <= budget:
            older, newer = turns[:known.covered], turns[known.covered:]
            summary = known.text  # still fits: nothing more to summarize this turn
        else:
            # Compress down to REFILL of the room, not just under it, so the next turns fit
            # beside the same summary and the model summarizes every few turns, not every turn.
            room = int((budget - head_size) * REFILL)
            keep = len(turns)
            used = 0
            while keep > 0 and used + sizes[keep - 1] <= room:
                keep -= 1
                used += sizes[keep]
            if keep == len(turns):
                keep -= 1  # the newest turn always goes, whatever its size
            older, newer = turns[:keep], turns[keep:]
            summary = await self._summary(call_id, older)
        head = "\n".join(part for part in (
            pinned.content if pinned is not None else "",
            f"{SUMMARY_PREFIX} {summary}" if summary else "") if part)
        log.debug("context of call %s: %d turns summarized, %d kept", call_id, len(older),
                  len(newer))
        return ([ChatMessage("system", head)] if head else []) + newer

    def _known(self, call_id: str, turns: Sequence[ChatMessage]) -> _Summary | None:
        """The call's summary, if it still covers the start of this history."""
        known = self._summaries.get(call_id)
        if known is None or known.covered > len(turns) \
                or _digest(turns[:known.covered]) != known.digest:
            return None
        self._summaries.move_to_end(call_id)
        return known

    async def _summary(self, call_id: str, older: list[ChatMessage]) -> str:
        if self.summarize is None or not older:
            return ""
        known = self._known(call_id, older)
        base, new = "", older
        if known is not None:
            if known.covered == len(older):
                return known.text
            base, new = known.text, older[known.covered:]
        text = base
        for batch in await self._batches(new):
            try:
                folded = await self.summarize(text, batch, call_id)
            except (ReautodError, TimeoutError) as err:
                log.warning("context of call %s: no summary (%s); older turns left out",
                            call_id, err)
                return base
            folded = " ".join(folded.split())
            # bounded even if the model ignores max_tokens: by its own count
            while await self.tokenizer.count(folded) > self.summary_tokens and " " in folded:
                folded = folded.rsplit(" ", 1)[0]
            text = folded or text
        if not text:
            return base
        self._summaries[call_id] = _Summary(len(older), _digest(older), text)
        self._summaries.move_to_end(call_id)
        while len(self._summaries) > self._max_calls:
            self._summaries.popitem(last=False)
        return text

    async def _batches(self, turns: list[ChatMessage]) -> list[list[ChatMessage]]:
        """`turns` in runs that fit one summarizing request (the summary so far, the
        instructions and the summary's own tokens beside them), oldest first."""
        room = max(1, self.n_ctx - 3 * self.summary_tokens - 2 * MESSAGE_OVERHEAD - 64
                   - self.margin)
        batches: list[list[ChatMessage]] = [[]]
        used = 0
        for turn in turns:
            size = await self._size(turn)
            if batches[-1] and used + size > room:
                batches.append([])
                used = 0
            batches[-1].append(turn)
            used += size
        return batches

    def forget(self, call_id: str) -> None:
        self._summaries.pop(call_id, None)


def model_summarizer(llm: LanguageModel, *, max_tokens: int, timeout_s: float) -> Summarize:
    """A `Summarize` that asks `llm` itself (bounded by `max_tokens` and `timeout_s`)."""

    async def summarize(previous: str, turns: Sequence[ChatMessage], call_id: str) -> str:
        lines = [f"{'Caller' if m.role == 'user' else 'Agent'}: {m.content}" for m in turns]
        if previous:
            lines.insert(0, f"(Before that: {previous})")
        chat = [ChatMessage("system", SUMMARY_INSTRUCTIONS),
                ChatMessage("user", "\n".join(lines))]
        parts: list[str] = []
        async with asyncio.timeout(timeout_s):
            async for chunk in relay(llm.stream_chat(chat, call_id=call_id,
                                                     max_tokens=max_tokens)):
                parts.append(chunk.text)
        return "".join(parts).strip()

    return summarize


class WindowedLanguageModel:
    """`LanguageModel` that fits every request to the window first, then asks `inner`."""

    def __init__(self, inner: LanguageModel, window: ContextWindow, *,
                 default_max_tokens: int) -> None:
        self.inner = inner
        self.window = window
        self.default_max_tokens = default_max_tokens

    def __getattr__(self, name: str) -> Any:  # what else the engine offers (scheduler, pool)
        return getattr(self.inner, name)

    def health(self) -> EngineHealth:
        return self.inner.health()

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        reply = max_tokens or self.default_max_tokens
        fitted = await self.window.fit(messages, call_id=call_id, reply_tokens=reply)
        async for chunk in relay(self.inner.stream_chat(fitted, call_id=call_id,
                                                        max_tokens=max_tokens, model=model)):
            yield chunk
