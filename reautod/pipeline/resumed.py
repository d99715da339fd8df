"""A conversation continued on a new media stream after a crash: its history restored, and the
resume line ("Sorry, we got cut off...") said instead of the opening.

Everything else is the conversation's own; a conversation that keeps no checkpoint
(`Checkpointed`) goes on from its fresh state with only the resume line said.
"""

from __future__ import annotations

from typing import Any

from reautod.conversation import (
    CallerTurn,
    Checkpointed,
    Conversation,
    Line,
    Played,
    Reply,
    Resumed,
    state_of,
)


class ResumedConversation:
    """`Conversation` over another one, for a resumed call (see the module docstring)."""

    def __init__(self, inner: Conversation, resumed: Resumed) -> None:
        self.inner = inner
        self._resumed = resumed
        if isinstance(inner, Checkpointed):
            inner.restore(resumed)

    async def opening(self) -> Reply | None:
        return Reply.line(self._resumed.line)

    async def reply(self, turn: CallerTurn) -> Reply:
        return await self.inner.reply(turn)

    async def keypress(self, digit: str) -> Reply | None:
        return await self.inner.keypress(digit)

    def silence(self) -> Reply:
        return self.inner.silence()

    def failure(self, code: str) -> Line:
        return self.inner.failure(code)

    def goodbye(self, reason: str) -> Line:
        return self.inner.goodbye(reason)

    def played(self, outcome: Played) -> None:
        self.inner.played(outcome)

    async def ended(self, reason: str) -> None:
        await self.inner.ended(reason)

    def checkpoint(self) -> dict[str, Any]:
        return state_of(self.inner)
