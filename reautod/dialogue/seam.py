"""The qualifying agent behind the pipeline's conversation seam (reautod.conversation).

`CallAgent` speaks in `AgentReply`s and wants to be told `heard(reply_id, text)` and
`end(cause)`; the pipeline asks a `Conversation`. This module is the translation, so neither
side knows the other:

- an `AgentReply`'s lines are `Line` parts (an approved line, one with a cache key, is `shared`
  so its audio is cached for every call; audio the response cache holds is `Line.audio`), its
  `LlmRequest` a `Generate` part (`max_tokens` and `sentences` kept; its `fallback` is what
  `failure` says) followed by the reply's approved `question` as a Line;
- `after` / `reason` / `transfer_to` are the reply's `then`, the reply id its `ref`, so
  `played` becomes `heard(ref, heard)`;
- `ended(reason)` becomes `end(cause)` (`end_cause`), then the call's result is handed on.

`PlaybookConversations` is the daemon's `Conversations`: each call's campaign is resolved when
the call connects (`opening`, async: a playbook file and the store are read), or earlier, when
its opening is decided before the call is placed (`expected_opening`, so the audio of the
playbook's own opening is made while the phone rings); a call whose
campaign names no playbook keeps today's agent (`reautod.pipeline.agent.DialogueAgent`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from reautod.conversation import (
    Action,
    CallContext,
    CallerTurn,
    Checkpointed,
    Conversation,
    Conversations,
    Generate,
    HangUp,
    Line,
    Listen,
    Played,
    Reply,
    Resumed,
    Say,
    Transfer,
    spoken_together,
    state_of,
)
from reautod.dialogue import replies
from reautod.dialogue.agent import CallAgent
from reautod.dialogue.checkpoint import agent_checkpoint, restore_agent
from reautod.dialogue.replies import After, AgentReply, CallResult, EndCause
from reautod.engines.base import AudioChunk

log = logging.getLogger(__name__)

# The pipeline's end reasons that mean the caller left (reautod.conversation.Conversation.ended).
_CALLER_LEFT = frozenset({"stop", "socket_closed", "silence"})
_TIME_LIMIT = frozenset({"max_duration", "operator", "shutdown"})


class AgentSource(Protocol):
    """Finds the agent of a connected call: None when its campaign has no playbook."""

    async def agent_for(self, call: CallContext) -> CallAgent | None: ...

    def has_playbook(self, campaign: str | None) -> bool | None:
        """Whether calls of `campaign` run a playbook, as far as known now (None: not known)."""
        ...


ResultSink = Callable[[CallContext, CallAgent, CallResult], Awaitable[None]]


def to_line(line: replies.Line) -> Line:
    """An agent's line as a seam Line (approved and shared lines are shared; cached audio comes
    along)."""
    cached = line.cached
    audio = None
    if cached is not None and cached.audio and cached.sample_rate:
        audio = (AudioChunk(cached.audio, cached.sample_rate),)
    return Line(line.text, audio=audio, shared=line.cache_key is not None or line.shared)


def to_action(reply: AgentReply) -> Action:
    if reply.after is After.HANG_UP:
        return HangUp(reply.reason or "agent")
    if reply.after is After.TRANSFER:
        return Transfer(reply.transfer_to, reply.reason or "transferred")
    return Listen()


def to_reply(reply: AgentReply) -> Reply:
    parts: list[Say] = [to_line(line) for line in reply.lines]
    if reply.llm is not None:
        parts.append(Generate(reply.llm.messages, reply.llm.max_tokens, reply.llm.sentences,
                              reply.llm.model))
    if reply.question is not None:
        parts.append(to_line(reply.question))  # never the model's to drop (composer)
    return Reply(tuple(parts), to_action(reply), ref=reply.id)


def end_cause(reason: str, *, agent_reason: str | None, pressed_key: bool) -> EndCause:
    """The agent's `EndCause` for the pipeline's end reason.

    `agent_reason`: the reason of the agent's own hang-up or transfer, if it asked for one (that
    reason coming back means the agent ended the call); `pressed_key`: the caller pressed a key,
    so an opt-out from telephony was the keypad's."""
    if agent_reason is not None and reason == agent_reason:
        return EndCause.AGENT
    if reason == "opted_out":
        return EndCause.KEYPAD_OPT_OUT if pressed_key else EndCause.SPOKEN_OPT_OUT
    if reason == "transferred":
        return EndCause.AGENT
    if reason in ("voicemail", "answering_machine"):
        return EndCause.VOICEMAIL
    if reason in _TIME_LIMIT:
        return EndCause.TIME_LIMIT
    if reason in _CALLER_LEFT:
        return EndCause.CALLER_HUNG_UP
    if reason.startswith(("failed", "protocol")) or reason in ("cancelled", "pipeline_finished"):
        return EndCause.FAILED
    return EndCause.CALLER_HUNG_UP


class AgentConversation:
    """One call's `Conversation` over its `CallAgent` (see the module docstring).

    `lines` gives the configured re-prompt (the playbook has none of its own); the apology is
    the fallback of the last model reply (the question it was to ask), else the playbook's."""

    def __init__(self, call: CallContext, agent: CallAgent, lines: Conversation,
                 on_result: ResultSink | None = None) -> None:
        self.call = call
        self.agent = agent
        self._lines = lines
        self._on_result = on_result
        self._fallback: str | None = None
        self._agent_reason: str | None = None
        self._pressed_key = False
        self.result: CallResult | None = None

    def _reply(self, reply: AgentReply) -> Reply:
        self._fallback = reply.llm.fallback if reply.llm is not None else None
        if reply.after is not After.LISTEN:
            self._agent_reason = reply.reason or ("agent" if reply.after is After.HANG_UP
                                                  else "transferred")
        return to_reply(reply)

    async def opening(self) -> Reply | None:
        return self._reply(await self.agent.opening())

    async def reply(self, turn: CallerTurn) -> Reply:
        return self._reply(await self.agent.respond(turn.text))

    async def keypress(self, digit: str) -> Reply | None:
        """Keys are telephony's (the opt-out key); the agent says nothing to them."""
        self._pressed_key = True
        return None

    def silence(self) -> Reply:
        return self._lines.silence()

    def failure(self, code: str) -> Line:
        if self._fallback:
            return Line(self._fallback)
        return to_line(self.agent.lines.approved("compliance:fallback"))

    def goodbye(self, reason: str) -> Line:
        return to_line(self.agent.lines.approved("compliance:goodbye"))

    def played(self, outcome: Played) -> None:
        ref = outcome.reply.ref
        if isinstance(ref, int):
            self.agent.heard(ref, outcome.heard)

    def checkpoint(self) -> dict[str, Any]:
        return agent_checkpoint(self.agent)

    def restore(self, resumed: Resumed) -> None:
        restore_agent(self.agent, resumed.state)

    async def ended(self, reason: str) -> None:
        cause = end_cause(reason, agent_reason=self._agent_reason, pressed_key=self._pressed_key)
        self.result = await self.agent.end(cause)
        if self._on_result is not None:
            await self._on_result(self.call, self.agent, self.result)


class DeferredConversation:
    """A call's conversation before its campaign is known: resolved once, at the opening (or
    the first turn, if the opening never ran), to the agent or to today's conversation."""

    def __init__(self, call: CallContext, source: AgentSource, fallback: Conversation,
                 on_result: ResultSink | None, agent: CallAgent | None = None) -> None:
        """`agent`: the call's agent, found already when its opening was decided ahead."""
        self.call = call
        self._source = source
        self._fallback = fallback
        self._on_result = on_result
        self._agent = agent
        self.inner: Conversation | None = None
        self._resumed: Resumed | None = None

    async def _resolve(self) -> Conversation:
        if self.inner is None:
            agent = self._agent or await self._source.agent_for(self.call)
            if agent is None:
                self.inner = self._fallback  # restored already, if the call was resumed
            else:
                conversation = AgentConversation(self.call, agent, self._fallback,
                                                 self._on_result)
                if self._resumed is not None:
                    conversation.restore(self._resumed)
                self.inner = conversation
        return self.inner

    def checkpoint(self) -> dict[str, Any]:
        return state_of(self.inner) if self.inner is not None else {}

    def restore(self, resumed: Resumed) -> None:
        """Kept for the conversation the call resolves to (at its first reply)."""
        self._resumed = resumed
        if isinstance(self._fallback, Checkpointed):
            self._fallback.restore(resumed)  # what `failure` and `silence` use until then

    def _now(self) -> Conversation:
        return self.inner if self.inner is not None else self._fallback

    async def opening(self) -> Reply | None:
        return await (await self._resolve()).opening()

    async def reply(self, turn: CallerTurn) -> Reply:
        return await (await self._resolve()).reply(turn)

    async def keypress(self, digit: str) -> Reply | None:
        return await (await self._resolve()).keypress(digit)

    def silence(self) -> Reply:
        return self._now().silence()

    def failure(self, code: str) -> Line:
        return self._now().failure(code)

    def goodbye(self, reason: str) -> Line:
        return self._now().goodbye(reason)

    def played(self, outcome: Played) -> None:
        self._now().played(outcome)

    async def ended(self, reason: str) -> None:
        await self._now().ended(reason)


class PlaybookConversations:
    """The daemon's `Conversations`: the campaign's playbook agent, else `fallback`'s."""

    def __init__(self, source: AgentSource, fallback: Conversations,
                 on_result: ResultSink | None = None) -> None:
        self._source = source
        self._fallback = fallback
        self._on_result = on_result
        self._ahead: dict[str, CallAgent] = {}  # call id -> its agent, found before it connected

    def start(self, call: CallContext) -> DeferredConversation:
        return DeferredConversation(call, self._source, self._fallback.start(call), self._on_result,
                                    agent=self._ahead.pop(call.call_id, None))

    async def expected_opening(self, call: CallContext) -> Line | None:
        """The call's agent is found now (its variant assigned, the lead read) and kept for the
        call; its opening is decided, and its leading lines are what the caller hears first
        (`OpeningsAhead`). A call without a playbook: today's opening."""
        agent = await self._source.agent_for(call)
        if agent is None:
            return self._fallback.opening(call)
        self._ahead[call.call_id] = agent
        lines = spoken_together(to_reply(await agent.prepared_opening()).parts)
        return Line(" ".join(line.text for line in lines)) if lines else None

    def forget(self, call_id: str) -> None:
        self._ahead.pop(call_id, None)

    def opening(self, call: CallContext) -> Line | None:
        # A playbook's opening is decided when the call connects (its variant, the lead's data);
        # today's greeting is prepared unless the campaign is known to run a playbook.
        if self._source.has_playbook(call.campaign):
            return None
        return self._fallback.opening(call)
