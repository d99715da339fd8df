"""The language model: one llama.cpp model (llama-cpp-python) in-process, shared by every call.

Agent replies are decoded together, several calls at once, by `llm_batch.BatchDecoder` (its own
llama.cpp context over the same weights, a sequence per reply, each call's conversation kept in
the KV cache between turns). The chat template comes from the GGUF's metadata. Replies stream
token by token; closing the stream (barge-in, hang-up) stops generation within a step and frees
the sequence. Every reply is capped at `max_tokens` (a random-weight test model never emits
end-of-sequence). The dialogue's constrained JSON (llama.cpp grammars) runs on the `Llama`
object's own context, one request at a time (`json_scheduler`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reautod.engines.base import (
    ChatMessage,
    EngineHealth,
    EngineStats,
    TokenChunk,
    refuse_named,
)
from reautod.engines.llm_batch import BatchDecoder, ReplyEnd
from reautod.engines.scheduler import EngineScheduler, JobContext
from reautod.errors import UnavailableError, ValidationError

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")


def validate_messages(messages: Any) -> list[dict[str, str]]:
    """The chat as llama-cpp-python wants it, or a ValidationError naming the bad entry."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError("LLM messages must be a non-empty list of ChatMessage")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            raise ValidationError(f"LLM message {i} is a {type(message).__name__}, not ChatMessage")
        if message.role not in ROLES:
            raise ValidationError(f"LLM message {i} has unknown role {message.role!r}")
        if not isinstance(message.content, str):
            raise ValidationError(f"LLM message {i} content must be text")
        out.append({"role": message.role, "content": message.content})
    return out


def default_threads() -> int:
    """All usable cores but one: llama.cpp's threads spin while they wait, and on a small box
    they would starve the STT and TTS workers (on 2 busy cores, 2 threads decode ~10x slower)."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


def chat_prompt(model: Llama) -> Callable[[list[dict[str, str]]], list[int]]:
    """The chat -> prompt tokens function of `model`, as llama-cpp-python's chat completion
    renders it: the GGUF's own template (without one, llama-cpp-python's fallback, Llama 2)."""
    from llama_cpp import llama_chat_format

    def text(token: int) -> str:
        return model.detokenize([token], special=True).decode("utf-8", "replace") \
            if token >= 0 else ""

    template = model.metadata.get("tokenizer.chat_template")
    formatter: Any = llama_chat_format.format_llama2
    if template:
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=text(model.token_eos()),
            bos_token=text(model.token_bos()), stop_token_ids=[model.token_eos()])

    def render(chat: list[dict[str, str]]) -> list[int]:
        result = formatter(messages=chat)
        return model.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special,
                              special=True)

    return render


class LlamaLLM:
    """`LanguageModel` on llama-cpp-python. Build with `LlamaLLM.load` (blocking: use a thread)."""

    def __init__(self, model: Llama, model_path: Path, decoder: BatchDecoder, *,
                 queue_size: int, timeout_s: float, max_tokens: int, temperature: float = 0.6,
                 token_timeout_s: float | None = None) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self._model: Llama | None = model
        self.model_path = model_path
        self.decoder = decoder
        self.timeout_s = timeout_s
        self.token_timeout_s = token_timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._prompt = chat_prompt(model)
        # A worker per sequence: each hands its reply to the decoder and relays the tokens.
        self.scheduler = EngineScheduler("llm", queue_size=queue_size,
                                         concurrency=decoder.sequences)
        # One llama.cpp context is not reentrant: the JSON side's own context, one worker.
        self.json_scheduler = EngineScheduler("llm", queue_size=queue_size, concurrency=1)

    @property
    def model(self) -> Llama | None:
        """The loaded model (None once closed), for the dialogue's constrained JSON: run it only
        through `json_scheduler`."""
        return self._model

    @classmethod
    def load(cls, path: Path, *, n_ctx: int, n_gpu_layers: int, n_threads: int | None,
             queue_size: int, timeout_s: float, max_tokens: int, gpu: bool = False,
             warm_up: bool = True, temperature: float = 0.6, sequences: int = 4) -> LlamaLLM:
        """Load the GGUF file; blocking. Replies get `sequences` sequences of `n_ctx` tokens."""
        from llama_cpp import Llama

        threads = n_threads or default_threads()
        model = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers if gpu else 0,
            n_threads=threads,
            n_threads_batch=threads,
            flash_attn=gpu,
            verbose=False,
        )
        if warm_up:  # the JSON side's context; the decoder warms its own
            model.create_chat_completion(messages=[{"role": "user", "content": "Hello."}],
                                         max_tokens=1)
        decoder = BatchDecoder(model, sequences=sequences, n_ctx_seq=n_ctx, threads=threads,
                               gpu=gpu, warm_up=warm_up)
        return cls(model, path, decoder, queue_size=queue_size, timeout_s=timeout_s,
                   max_tokens=max_tokens, temperature=temperature)

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        """Stream the assistant reply; closing the iterator stops generation within a step.

        The last chunk has empty text and carries the request's timing.
        """
        refuse_named(model)
        chat = validate_messages(messages)
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValidationError("max_tokens must be a positive integer")
        limit = min(max_tokens or self.max_tokens, self.max_tokens)
        stream = self.scheduler.stream(lambda ctx: self._generate(chat, limit, ctx),
                                       call_id=call_id, total_timeout_s=self.timeout_s,
                                       item_timeout_s=self.token_timeout_s)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    def _generate(self, chat: list[dict[str, str]], limit: int, ctx: JobContext) -> None:
        ctx.check()  # cancelled while it waited: do not even render the prompt
        if self._model is None:
            raise UnavailableError("llm engine is closed")
        tokens = self._prompt(chat)
        for item in self.decoder.submit(tokens, call_id=ctx.call_id, limit=limit,
                                        temperature=self.temperature,
                                        cancelled=lambda: ctx.cancelled):
            if isinstance(item, ReplyEnd):  # the prompt's length, for the cost meter
                ctx.emit(TokenChunk("", timing=ctx.timing(), prompt_tokens=item.prompt_tokens))
            else:
                ctx.emit(TokenChunk(item))

    @property
    def tokens_generated(self) -> int:
        """Tokens produced since load, including those a cancelled caller never read."""
        return self.decoder.tokens_generated

    def health(self) -> EngineHealth:
        return self.scheduler.health("llm", str(self.model_path))

    def stats(self) -> EngineStats:
        stats = self.scheduler.stats()
        decoder = self.decoder
        stats.extra.update(tokens_generated=float(decoder.tokens_generated),
                           sequences=float(decoder.sequences),
                           prompt_tokens_evaluated=float(decoder.prompt_tokens_evaluated),
                           prompt_tokens_reused=float(decoder.prompt_tokens_reused),
                           most_replies_in_one_step=float(decoder.most_in_one_step))
        return stats

    async def close(self) -> None:
        # a worker may still be inside llama.cpp: freeing what it uses would crash it
        if not (await self.scheduler.close() and await self.json_scheduler.close()):
            return
        model, self._model = self._model, None
        if model is not None and await asyncio.to_thread(self.decoder.close):
            model.close()
