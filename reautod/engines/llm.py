"""The language model: one llama.cpp model (llama-cpp-python) in-process, shared by every call.

The chat template comes from the GGUF's metadata. Replies stream token by token from the worker
thread; the job checks its cancel flag before every token, so closing the stream (barge-in,
hang-up) stops generation within a token and frees the worker. Every reply is capped at
`max_tokens` (a random-weight test model never emits end-of-sequence).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from reautod.engines.base import ChatMessage, EngineHealth, EngineStats, TokenChunk
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


class LlamaLLM:
    """`LanguageModel` on llama-cpp-python. Build with `LlamaLLM.load` (blocking: use a thread)."""

    def __init__(self, model: Llama, model_path: Path, *, queue_size: int, timeout_s: float,
                 max_tokens: int, temperature: float = 0.6, token_timeout_s: float | None = None
                 ) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self._model: Llama | None = model
        self.model_path = model_path
        self.timeout_s = timeout_s
        self.token_timeout_s = token_timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._tokens_lock = threading.Lock()
        self._tokens_generated = 0
        # One llama.cpp context is not reentrant: exactly one worker.
        self.scheduler = EngineScheduler("llm", queue_size=queue_size, concurrency=1)

    @property
    def model(self) -> Llama | None:
        """The loaded model (None once closed), for work that shares this engine's scheduler
        (the dialogue's constrained JSON): run it only through `scheduler`."""
        return self._model

    @classmethod
    def load(cls, path: Path, *, n_ctx: int, n_gpu_layers: int, n_threads: int | None,
             queue_size: int, timeout_s: float, max_tokens: int, gpu: bool = False,
             warm_up: bool = True, temperature: float = 0.6) -> LlamaLLM:
        """Load the GGUF file; blocking."""
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
        if warm_up:
            # The first evaluation allocates llama.cpp's compute buffers and renders the chat
            # template once: ~3 s for SmolLM2-135M on a busy 2-core box, which the first
            # caller of the day would otherwise wait through before the agent says a word.
            model.create_chat_completion(messages=[{"role": "user", "content": "Hello."}],
                                         max_tokens=1)
        return cls(model, path, queue_size=queue_size, timeout_s=timeout_s, max_tokens=max_tokens,
                   temperature=temperature)

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None) -> AsyncIterator[TokenChunk]:
        """Stream the assistant reply; closing the iterator stops generation within a token.

        The last chunk has empty text and carries the request's timing.
        """
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
        ctx.check()  # cancelled while it waited: do not even tokenize the prompt
        model = self._model
        if model is None:
            raise UnavailableError("llm engine is closed")
        completion = cast(Iterator[dict[str, Any]], model.create_chat_completion(
            messages=cast(Any, chat), stream=True, max_tokens=limit, temperature=self.temperature,
        ))
        generated = 0
        try:
            for part in completion:
                ctx.check()
                choice = part["choices"][0]
                text = choice.get("delta", {}).get("content")
                if isinstance(text, str) and text:
                    generated += 1
                    with self._tokens_lock:
                        self._tokens_generated += 1
                    ctx.emit(TokenChunk(text))
        finally:
            close = getattr(completion, "close", None)
            if close is not None:  # a generator: release llama.cpp's state for the next job
                close()
        # the context holds the prompt and every token generated after it (the last one
        # sampled but not evaluated): about the prompt's length, for the cost meter
        ctx.emit(TokenChunk("", timing=ctx.timing(),
                            prompt_tokens=max(0, model.n_tokens - generated)))

    @property
    def tokens_generated(self) -> int:
        """Tokens produced since load, including those a cancelled caller never read."""
        with self._tokens_lock:
            return self._tokens_generated

    def health(self) -> EngineHealth:
        return self.scheduler.health("llm", str(self.model_path))

    def stats(self) -> EngineStats:
        stats = self.scheduler.stats()
        stats.extra["tokens_generated"] = float(self.tokens_generated)
        return stats

    async def close(self) -> None:
        if not await self.scheduler.close():
            return  # the worker may still be inside llama.cpp: freeing the model would crash it
        model, self._model = self._model, None
        if model is not None:
            model.close()
