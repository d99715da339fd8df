"""The model as a supplement to phrase matching: constrained JSON for facts phrases missed.

Only choice and yes/no facts are asked for (numbers and free text are read deterministically),
with a JSON schema that llama.cpp turns into a grammar, so even a tiny model's output parses.
What comes back is validated value by value (a value outside the fact's options is dropped) and
stored with evidence "model", which never replaces a value a phrase or an answer gave
(CallState.learn). Any failure or timeout yields nothing: the call goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from reautod.dialogue.playbook import Playbook
from reautod.engines.base import ChatMessage
from reautod.engines.llm import default_threads, validate_messages
from reautod.engines.scheduler import EngineScheduler, JobContext
from reautod.errors import ReautodError

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
_INSTRUCTIONS = ("Read the caller's answer and fill in the JSON. Use \"unknown\" for anything "
                 "the answer does not clearly say.")


# (call id, prompt tokens, completion tokens, compute seconds): a completion's usage, for the
# cost part's meter of that call (`CostPart.llm_usage`)
JsonUsage = Callable[[str, int, int, float], None]


class JsonModel(Protocol):
    """A model that answers with JSON matching a schema (a grammar constrains its tokens)."""

    async def complete_json(self, messages: list[ChatMessage], schema: dict[str, Any], *,
                            call_id: str, max_tokens: int) -> str: ...


def model_facts(playbook: Playbook, names: Sequence[str]) -> list[str]:
    """The facts among `names` the model may be asked for (closed sets only)."""
    return [n for n in names if n in playbook.facts and playbook.facts[n].type in ("choice", "yes_no")]


def schema_for(playbook: Playbook, names: Sequence[str]) -> dict[str, Any]:
    props = {n: {"enum": [*playbook.facts[n].values(), UNKNOWN]} for n in names}
    return {"type": "object", "properties": props, "required": list(names),
            "additionalProperties": False}


def messages_for(playbook: Playbook, names: Sequence[str], question: str | None,
                 answer: str) -> list[ChatMessage]:
    fields = "\n".join(
        f"- {n}: {playbook.facts[n].description or n} (one of: "
        f"{', '.join([*playbook.facts[n].values(), UNKNOWN])})" for n in names)
    asked = f"Question: {question}\n" if question else ""
    return [ChatMessage("system", _INSTRUCTIONS),
            ChatMessage("user", f"{asked}Answer: {answer}\nFields:\n{fields}")]


def read_answer(raw: str, playbook: Playbook, names: Sequence[str]) -> dict[str, str]:
    """The valid values in the model's JSON (never raises; anything odd is dropped)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, str] = {}
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value != UNKNOWN and value in playbook.facts[name].values():
            found[name] = value
    return found


async def extract(model: JsonModel, playbook: Playbook, names: Sequence[str], *,
                  question: str | None, answer: str, call_id: str,
                  timeout_s: float) -> dict[str, str]:
    """Ask the model for `names` (closed-set facts) in `answer`; {} on failure or timeout."""
    names = model_facts(playbook, names)
    if not names:
        return {}
    try:
        async with asyncio.timeout(timeout_s):
            raw = await model.complete_json(messages_for(playbook, names, question, answer),
                                            schema_for(playbook, names), call_id=call_id,
                                            max_tokens=12 * len(names) + 8)
    except (TimeoutError, ReautodError) as err:
        log.debug("model extraction gave nothing: %r", err)
        return {}
    return read_answer(raw, playbook, names)


class LlamaJsonModel:
    """`JsonModel` on llama-cpp-python (response_format with a JSON schema -> a grammar).

    It runs through an EngineScheduler: give it the LLM engine's own (one llama.cpp context is
    not reentrant) or let `load` make a model and scheduler of its own.
    """

    def __init__(self, model: Llama, scheduler: EngineScheduler, *, timeout_s: float = 10.0,
                 on_usage: JsonUsage | None = None) -> None:
        self._model = model
        self._scheduler = scheduler
        self._timeout_s = timeout_s
        self._on_usage = on_usage

    @classmethod
    def load(cls, path: Path, *, n_ctx: int = 2048, n_threads: int | None = None,
             timeout_s: float = 10.0, on_usage: JsonUsage | None = None) -> LlamaJsonModel:
        """Load a GGUF file with a scheduler of its own (blocking: use a thread)."""
        from llama_cpp import Llama

        threads = n_threads or default_threads()
        model = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                      n_threads_batch=threads, verbose=False)
        return cls(model, EngineScheduler("llm", queue_size=8, concurrency=1), timeout_s=timeout_s,
                   on_usage=on_usage)

    async def complete_json(self, messages: list[ChatMessage], schema: dict[str, Any], *,
                            call_id: str, max_tokens: int) -> str:
        chat = validate_messages(messages)

        def run(ctx: JobContext) -> tuple[str, int, int, float]:
            ctx.check()
            started = time.monotonic()  # on the worker: the queue wait is not compute
            # From an empty context: llama-cpp-python would reuse the prefix the last answer
            # left, which changes the numerics, and a small model's answer flips on them. The
            # same question gets the same answer whatever ran before it.
            self._model.reset()
            out = cast(dict[str, Any], self._model.create_chat_completion(
                messages=cast(Any, chat), max_tokens=max_tokens, temperature=0.0,
                response_format={"type": "json_object", "schema": schema}))
            usage = out.get("usage") or {}
            return (str(out["choices"][0]["message"]["content"] or ""),
                    int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0), time.monotonic() - started)

        text, prompt_tokens, completion_tokens, compute_s = await self._scheduler.run(
            run, call_id=call_id, timeout_s=self._timeout_s)
        if self._on_usage is not None:
            self._on_usage(call_id, prompt_tokens, completion_tokens, compute_s)
        return text

    async def close(self) -> None:
        if await self._scheduler.close():
            self._model.close()
