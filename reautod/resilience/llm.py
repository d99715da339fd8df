"""The language model behind the `llm` circuit: an LLM that fails or is slow is noticed across
calls, and while its circuit is open every request is refused at once (the reply falls back to
its scripted line at once instead of waiting out the timeout), and `down()` tells the agents to
take the playbook's scripted path (reautod.dialogue.agent).

A stream is judged when it ends: an engine error is a failure; so is a first token later than
`slow_s`, or none by then when the caller closed the stream (the writer's timeout). A stream
closed early within `slow_s` (a barge-in) counts for nothing. While half-open one stream at a
time is let through as the probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from reautod.engines.base import ChatMessage, EngineHealth, LanguageModel, TokenChunk
from reautod.resilience.breaker import BreakerOpenError
from reautod.resilience.service import Resilience

CIRCUIT = "llm"


class GuardedLanguageModel:
    """`LanguageModel` over another, through the `llm` circuit (see the module docstring)."""

    def __init__(self, inner: LanguageModel, resilience: Resilience, *, slow_s: float) -> None:
        self.inner = inner
        self.resilience = resilience
        self.slow_s = slow_s
        self._probing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def __getattr__(self, name: str) -> Any:  # what else the engine offers (scheduler, path)
        return getattr(self.inner, name)

    def down(self) -> bool:
        """True while the circuit is open (not while a probe may go through)."""
        return self.resilience.state(CIRCUIT) == "open"

    def health(self) -> EngineHealth:
        return self.inner.health()

    def _admit(self) -> bool:
        """Whether this stream is the half-open probe; BreakerOpenError when refused."""
        state = self.resilience.state(CIRCUIT)
        if state == "closed":
            return False
        if state == "open" or self._probing:
            raise BreakerOpenError("the language model's circuit is open after repeated "
                                   "failures or slow replies", retry_in_s=self.resilience
                                   .breakers.retry_in(CIRCUIT))
        self._probing = True
        return True

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        probe = self._admit()
        started = time.monotonic()
        first: float | None = None
        verdict: bool | None = None  # failed?
        stream = self.inner.stream_chat(messages, call_id=call_id, max_tokens=max_tokens,
                                        model=model)
        try:
            async for chunk in stream:
                if first is None:
                    first = time.monotonic() - started
                yield chunk
            verdict = first is not None and first > self.slow_s
        except Exception:
            verdict = True
            raise
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            if verdict is None:  # closed or cancelled by the caller
                waited = first if first is not None else time.monotonic() - started
                verdict = True if waited > self.slow_s else None
            self._judge(verdict, probe)

    def _judge(self, failed: bool | None, probe: bool) -> None:
        if failed is None:  # a barge-in says nothing about the model
            self._probing = self._probing and not probe
            return
        policy = self.resilience.policy(CIRCUIT)
        record = self.resilience.breakers.record(CIRCUIT, failed=failed,
                                                 failures=policy.failures,
                                                 recovery_s=policy.recovery_s)

        async def recorded() -> None:
            try:
                await record
            finally:
                if probe:
                    self._probing = False

        task = asyncio.get_running_loop().create_task(recorded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
