"""Finishing the agent's replies: the next question, the approved lines with their cached audio,
and the reply id the pipeline reports back with.

The rule for the model: it may phrase an acknowledgement of what the caller said, never the
question. A reply the model writes is followed by the stage's next question, as the playbook
words it (`AgentReply.question`), so a model that drops the question, or asks its own, can not
take the approved one out of the call; one sentence of the model's is said (`LlmRequest.
sentences`), so a rambling model cannot bury it either. If the model fails or writes nothing,
its fallback is that same question."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal

from reautod.dialogue.cache import CachedLine, ResponseCache
from reautod.dialogue.lines import CallLines
from reautod.dialogue.playbook import Playbook
from reautod.dialogue.replies import After, AgentReply, Line, LlmRequest
from reautod.dialogue.state import CallState
from reautod.dialogue.tools import Booker
from reautod.engines.base import ChatMessage
from reautod.errors import ReautodError

log = logging.getLogger(__name__)

# A fact still unknown after this many questions is left (the stage's turn limit moves on).
MAX_ASKS = 2


def ends_with_question(lines: list[Line]) -> bool:
    return bool(lines) and lines[-1].text.rstrip().endswith("?")


class ReplyComposer:
    """Builds one call's replies from its playbook, lines and state (see the module docstring)."""

    def __init__(self, playbook: Playbook, version: str, lines: CallLines, state: CallState,
                 booker: Booker | None, cache: ResponseCache | None) -> None:
        self.playbook = playbook
        self.version = version
        self.lines = lines
        self.state = state
        self._booker = booker
        self._cache = cache
        self._replies = 0

    async def entry_lines(self, name: str) -> list[Line]:
        """What is said on entering stage `name` (its `enter`, with free slots for {slots})."""
        stage = self.playbook.stages[name]
        if stage.enter is None:
            return []
        if "{slots}" in stage.enter and self._booker is not None:
            slots = await self._booker.first_free()
            if not slots:
                return [self.lines.line(self._booker.settings.none_free)]
            return [self.lines.line(stage.enter, slots=self.lines.slots(slots))]
        return [self.lines.line(stage.enter)]

    def next_fact(self) -> str | None:
        stage = self.playbook.stages[self.state.stage]
        return next((f for f in stage.learn if f not in self.state.facts
                     and self.state.times_asked.get(f, 0) < MAX_ASKS), None)

    def _asking(self, fact: str | None) -> None:
        self.state.asked = fact
        if fact is not None:
            self.state.times_asked[fact] = self.state.times_asked.get(fact, 0) + 1

    async def finish(self, lines: list[Line], *, after: After = After.LISTEN,
                     reason: str | None = None, transfer_to: str | None = None,
                     changed_stage: bool = False, asked_back: bool = False) -> AgentReply:
        """Complete the reply: the next question (as written, or by the model), then package."""
        state = self.state
        llm: LlmRequest | None = None
        follows: Line | None = None  # the approved question after the model's words
        if after is After.LISTEN and not asked_back:
            fact = self.next_fact()
            question = self.lines.line(self.playbook.facts[fact].ask).text if fact else None
            scripted = self.playbook.stages[state.stage].reply == "scripted"
            if lines or changed_stage or scripted:
                if not ends_with_question(lines):
                    if question:
                        lines.append(Line(question))
                        self._asking(fact)
                    elif state.last_question and not changed_stage:
                        lines.append(Line(state.last_question))
                    elif not lines:
                        lines.append(self.lines.approved("compliance:fallback"))
            else:
                llm = self._llm_request(question)
                self._asking(fact)
                if question:
                    follows = Line(question)
                    state.last_question = question
        if lines and ends_with_question(lines):
            state.last_question = lines[-1].text
        self._replies += 1
        reply = AgentReply(id=self._replies, stage=state.stage, lines=tuple(await self._cached(lines)),
                           llm=llm, after=after, reason=reason, transfer_to=transfer_to,
                           question=follows)
        if reply.text:
            state.say("agent", reply.text, reply.id)
        commitments = tuple(line for line in reply.lines if line.commitment)
        if commitments:
            state.commitments[reply.id] = commitments
        return reply

    def _llm_request(self, question: str | None) -> LlmRequest:
        messages: list[ChatMessage] = [self.lines.system_prompt(self.state.stage, question)]
        for said in self.state.history:
            role: Literal["assistant", "user"] = "assistant" if said.role == "agent" else "user"
            if len(messages) > 1 and messages[-1].role == role:
                messages[-1] = ChatMessage(role, f"{messages[-1].content} {said.text}")
            else:
                messages.append(ChatMessage(role, said.text))
        fallback = question or self.lines.approved("compliance:fallback").text
        # Before the approved question the model only acknowledges: one sentence of it is said.
        return LlmRequest(tuple(messages), self.playbook.model.max_tokens, fallback,
                          sentences=1 if question else None,
                          model=self.playbook.model_for(self.state.stage))

    async def _cached(self, lines: list[Line]) -> list[Line]:
        """Attach cached audio to approved lines; a miss stores the text for the next call."""
        if self._cache is None:
            return lines
        out = []
        for line in lines:
            if line.cache_key is not None:
                pb = self.playbook.playbook
                cached = await self._cache.get(pb, self.version, line.cache_key)
                if cached is None:
                    try:
                        await self._cache.put(pb, self.version, line.cache_key, CachedLine(line.text))
                    except ReautodError as err:
                        log.warning("response cache: %s", err.message)
                line = replace(line, cached=cached)
            out.append(line)
        return out
