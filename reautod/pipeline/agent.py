"""The dialogue agent of one call: its system prompt and the conversation context it keeps.

For now one agent per call (the multi-agent dialogue comes later). The context holds what the
caller said and what the caller actually *heard* of the agent: an interrupted reply is cut to the
part whose playback Twilio confirmed with a mark.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal

from reautod.config import AgentSettings
from reautod.engines.base import ChatMessage


class _SafeFormatter(string.Formatter):
    """Fills known fields; leaves unknown `{x}` as written so a template typo never crashes a call."""

    def get_value(self, key: int | str, args: object, kwargs: dict[str, str]) -> str:  # type: ignore[override]
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return "{" + str(key) + "}"


def render(template: str, **fields: str) -> str:
    try:
        return _SafeFormatter().vformat(template, (), fields)
    except (ValueError, IndexError):  # unbalanced braces in an operator-written template
        return template


@dataclass
class _Message:
    role: str
    content: str
    reply_id: int | None = None  # set on assistant messages


@dataclass
class DialogueAgent:
    """Prompt and context for one call; pure state, no I/O."""

    settings: AgentSettings
    lead_name: str
    goal: str
    max_context_messages: int = 40  # the system prompt always stays; oldest turns go first
    # The call's opening with its business, opt-out and callback filled (pipeline.opening);
    # None: the config's greeting as written.
    opening: str | None = None
    _messages: list[_Message] = field(default_factory=list)

    @classmethod
    def for_call(cls, settings: AgentSettings, *, lead_name: str, goal: str | None,
                 opening: str | None = None) -> DialogueAgent:
        return cls(settings=settings, lead_name=lead_name or "there", goal=goal or settings.goal,
                   opening=opening)

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
        """The first thing the agent says on an outbound call, with the lead's name filled."""
        return self.line(self.opening if self.opening is not None else self.settings.greeting)

    def line(self, template: str) -> str:
        """A scripted line (greeting, re-prompt, goodbye, apology) with the call's fields filled."""
        return render(template, **self._fields())

    def add_user(self, text: str) -> None:
        if text.strip():
            self._messages.append(_Message("user", text.strip()))
            self._trim()

    def add_dtmf(self, digit: str) -> None:
        self._messages.append(_Message("user", f"[pressed {digit}]"))
        self._trim()

    def set_assistant(self, reply_id: int, text: str) -> None:
        """Record (or replace) what the caller heard of reply `reply_id`; empty text removes it."""
        text = text.strip()
        for i, message in enumerate(self._messages):
            if message.reply_id == reply_id:
                if text:
                    message.content = text
                else:
                    del self._messages[i]
                return
        if text:
            self._messages.append(_Message("assistant", text, reply_id))
            self._trim()

    def messages(self) -> list[ChatMessage]:
        """The LLM request: system prompt, then the conversation in order."""
        out = [ChatMessage(role="system", content=self.system_prompt)]
        for m in self._messages:
            role: Literal["assistant", "user"] = "assistant" if m.role == "assistant" else "user"
            # Merge consecutive same-role messages: chat templates expect alternation.
            if len(out) > 1 and out[-1].role == role:
                out[-1] = ChatMessage(role=role, content=f"{out[-1].content} {m.content}")
            else:
                out.append(ChatMessage(role=role, content=m.content))
        return out

    def _trim(self) -> None:
        excess = len(self._messages) - self.max_context_messages
        if excess > 0:
            del self._messages[:excess]
