"""The wire side of the LLM pool: OpenAI-compatible server-sent events, and the pool as the
dialogue's constrained-JSON model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from reautod.engines.base import ChatMessage, TokenChunk
from reautod.errors import EngineError

if TYPE_CHECKING:
    from reautod.engines.pool import LlmPool


class PoolJsonModel:
    """`JsonModel` (reautod.dialogue.llm_extract) over the pool: the reply constrained to a JSON
    schema, by the endpoints serving `model` (None: any); `on_usage` hears (call id, prompt
    tokens, completion chunks, compute seconds)."""

    def __init__(self, pool: LlmPool,
                 on_usage: Callable[[str, int, int, float], None] | None = None,
                 model: str | None = None) -> None:
        self.pool = pool
        self.on_usage = on_usage
        self.model = model

    async def complete_json(self, messages: list[ChatMessage], schema: dict[str, Any], *,
                            call_id: str, max_tokens: int) -> str:
        parts: list[str] = []
        last: TokenChunk | None = None
        async for chunk in self.pool.stream_chat(messages, call_id=call_id, max_tokens=max_tokens,
                                                 model=self.model, json_schema=schema):
            parts.append(chunk.text)
            last = chunk
        if self.on_usage is not None and last is not None and last.timing is not None:
            self.on_usage(call_id, last.prompt_tokens or 0, sum(1 for p in parts if p),
                          last.timing.compute_s)
        return "".join(parts)


@dataclass
class Closing:
    """A streamed response for `contextlib.aclosing`."""

    response: httpx.Response

    async def aclose(self) -> None:
        await self.response.aclose()


def sse_data(line: str) -> str | None:
    """The payload of one server-sent-events line, or None for comments and blank lines."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


def chunk_delta(name: str, data: str) -> tuple[str, int | None]:
    """(text, prompt tokens when the chunk carries usage) of one chat.completion.chunk."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as err:
        raise EngineError(f"llm endpoint {name} sent malformed JSON: {data[:80]!r}") from err
    usage = chunk.get("usage") if isinstance(chunk, dict) else None
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    text = ""
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        text = content if isinstance(content, str) else ""
    return text, prompt if isinstance(prompt, int) else None
