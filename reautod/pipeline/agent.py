"""Today's dialogue: one system prompt per call, as a `Conversation` (reautod.conversation).

Every caller turn and key press is answered by the LLM from the system prompt and the context;
the opening, re-prompt, goodbye and apology are the configured lines. The context holds what the
caller said and what the caller actually *heard* of the agent (`played`), so an interrupted
reply is remembered only up to where the caller cut in. The qualifying agent (reautod.dialogue)
replaces this through the same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from reautod.config import AgentSettings
from reautod.conversation import (
    CallContext,
    CallerTurn,
    Generate,
    Line,
    Played,
    Reply,
    Resumed,
)
from reautod.engines.base import ChatMessage
from reautod.pipeline.opening import OpeningFields, render, render_opening


@dataclass
class DialogueAgent:
    """Prompt and context of one call; pure state, no I/O. Implements `Conversation`."""

    settings: AgentSettings
    lead_name: str
    goal: str
    # The call's opening with its business, opt-out and callback filled (pipeline.opening);
    # its {lead_name} is filled here.
    opening_template: str
    direction: Literal["outbound", "inbound"] = "outbound"
    max_context_messages: int = 40  # the system prompt always stays; oldest turns go first
    _messages: list[ChatMessage] = field(default_factory=list)

    @classmethod
    def for_call(cls, settings: AgentSettings, *, lead_name: str, goal: str | None,
                 opening: str | None = None,
                 direction: Literal["outbound", "inbound"] = "outbound") -> DialogueAgent:
        """The agent of one call from its stream parameters (no `opening`: on an outbound call
        the config's greeting, rendered with the config's own fields; on an inbound one, none)."""
        if not opening and direction == "outbound":
            opening = render_opening(settings.greeting, OpeningFields.from_agent(settings))
        return cls(settings=settings, lead_name=lead_name or "there", goal=goal or settings.goal,
                   opening_template=opening or "", direction=direction)

    def _fields(self) -> dict[str, str]:
        return {
            "agent_name": self.settings.agent_name,
            "business_name": self.settings.business_name,
            "lead_name": self.lead_name,
            "goal": self.goal,
        }

    @property
    def system_prompt(self) -> str:
        return render(self.settings.system_prompt, **self._fields())

    @property
    def greeting(self) -> str:
        """The call's opening, with the lead's name filled ("" when it has none)."""
        return self._line(self.opening_template)

    def _line(self, template: str) -> str:
        return render(template, **self._fields())

    def messages(self) -> tuple[ChatMessage, ...]:
        """The LLM request: system prompt, then the conversation in order."""
        out = [ChatMessage(role="system", content=self.system_prompt)]
        for m in self._messages:
            # Merge consecutive same-role messages: chat templates expect alternation.
            if len(out) > 1 and out[-1].role == m.role:
                out[-1] = ChatMessage(role=m.role, content=f"{out[-1].content} {m.content}")
            else:
                out.append(m)
        return tuple(out)

    def _add(self, role: Literal["user", "assistant"], text: str) -> None:
        self._messages.append(ChatMessage(role=role, content=text))
        excess = len(self._messages) - self.max_context_messages
        if excess > 0:
            del self._messages[:excess]

    # -- Conversation

    def opening_line(self) -> Line | None:
        # A call Twilio put through to us carries the inbound greeting as its opening (the voice
        # webhook renders agent.inbound_greeting), so the caller is greeted at once; an inbound
        # call with no opening (a bare simulated caller) waits for the caller to speak first.
        return Line(self.greeting) if self.opening_template else None

    async def opening(self) -> Reply | None:
        line = self.opening_line()
        return Reply((line,)) if line is not None else None

    async def reply(self, turn: CallerTurn) -> Reply:
        if turn.text.strip():
            self._add("user", turn.text.strip())
        return Reply((Generate(self.messages()),))

    async def keypress(self, digit: str) -> Reply:
        self._add("user", f"[pressed {digit}]")
        return Reply((Generate(self.messages()),))

    def silence(self) -> Reply:
        return Reply((Line(self._line(self.settings.reprompt), shared=True),))

    def failure(self, code: str) -> Line:
        return Line(self._line(self.settings.apology), shared=True)

    def goodbye(self, reason: str) -> Line:
        return Line(self._line(self.settings.goodbye), shared=True)

    def played(self, outcome: Played) -> None:
        if outcome.heard.strip():
            self._add("assistant", outcome.heard.strip())

    async def ended(self, reason: str) -> None:
        """Nothing to settle: this agent keeps no outcome (the qualifying agent does)."""

    # -- Checkpointed: the context is the call's transcript, which the checkpoint holds already

    def checkpoint(self) -> dict[str, Any]:
        return {}

    def restore(self, resumed: Resumed) -> None:
        for speaker, text in resumed.history:
            if text.strip():
                self._add("user" if speaker == "caller" else "assistant", text.strip())


class AgentConversations:
    """`Conversations` of DialogueAgents, from the agent settings current when each call starts."""

    def __init__(self, settings: Callable[[], AgentSettings]) -> None:
        self._settings = settings

    def start(self, call: CallContext) -> DialogueAgent:
        return DialogueAgent.for_call(self._settings(), lead_name=call.lead_name, goal=call.goal,
                                      opening=call.opening, direction=call.direction)

    def opening(self, call: CallContext) -> Line | None:
        return self.start(call).opening_line()
