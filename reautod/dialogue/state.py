"""What one call has said and learned so far: pure state, carried whole across stages.

A stage change moves `stage` and resets the per-stage turn count; the history, the facts, the
objection count and any pending confirmation stay. The history holds what the caller said and
what the caller heard of the agent (an interrupted reply is cut to the heard part), and the
commitments (a booking or callback confirmed) the caller cut off, owed at the next reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from reautod.dialogue.replies import Line
from reautod.dialogue.scheduling import Booking, Slot
from reautod.dialogue.vocabulary import Outcome

Role = Literal["caller", "agent"]


@dataclass
class Said:
    role: Role
    text: str
    stage: str
    reply_id: int | None = None  # agent lines: the reply they belong to


@dataclass(frozen=True)
class Learned:
    value: str | float
    evidence: str  # the phrase, "answer", or "model"
    turn: int  # the caller turn it came from
    stage: str


@dataclass(frozen=True)
class PendingBooking:
    slot: Slot


@dataclass(frozen=True)
class PendingCallback:
    at: datetime  # UTC


Pending = PendingBooking | PendingCallback


@dataclass
class CallState:
    stage: str
    history: list[Said] = field(default_factory=list)
    facts: dict[str, Learned] = field(default_factory=dict)
    objections: int = 0
    turns: int = 0  # caller turns in the call
    stage_turns: int = 0  # caller turns since entering `stage`
    transitions: int = 0  # recorded so far (the seq of the next is this)
    decisions: int = 0
    asked: str | None = None  # the fact the agent's last question asked for
    times_asked: dict[str, int] = field(default_factory=dict)  # per fact
    last_question: str | None = None  # re-asked after an interruption (robot, FAQ)
    offered: tuple[Slot, ...] = ()  # slots the agent last offered
    pending: Pending | None = None  # a confirmation the agent asked for
    awaiting_callback_time: bool = False
    booking: Booking | None = None
    callback_at: datetime | None = None
    outcome: Outcome | None = None
    disposition: str | None = None
    transferred_to: str | None = None
    score: int | None = None
    commitments: dict[int, tuple[Line, ...]] = field(default_factory=dict)  # by reply id
    unheard: list[Line] = field(default_factory=list)  # commitments cut off: said again

    def fact_values(self) -> dict[str, str | float]:
        return {name: f.value for name, f in self.facts.items()}

    def learn(self, name: str, value: str | float, evidence: str, stage: str) -> bool:
        """Keep a value; a model's guess never replaces what a phrase or an answer gave.
        True if the stored value changed."""
        current = self.facts.get(name)
        if current is not None and (current.value == value or
                                    (evidence == "model" and current.evidence != "model")):
            return False
        self.facts[name] = Learned(value, evidence, self.turns, stage)
        return True

    def say(self, role: Role, text: str, reply_id: int | None = None) -> None:
        if text.strip():
            self.history.append(Said(role, text.strip(), self.stage, reply_id))

    def heard(self, reply_id: int, text: str) -> None:
        """Replace the agent's words of `reply_id` with what the caller heard (may be none);
        a commitment of it not heard whole is owed (`take_unheard`)."""
        words = " ".join(text.split())
        self.unheard += [line for line in self.commitments.pop(reply_id, ())
                         if " ".join(line.text.split()) not in words]
        kept = [s for s in self.history if s.reply_id != reply_id]
        index = next((i for i, s in enumerate(self.history) if s.reply_id == reply_id), len(kept))
        if text.strip():
            kept.insert(index, Said("agent", text.strip(), self.stage, reply_id))
        self.history = kept

    def take_unheard(self) -> list[Line]:
        """The commitments the caller cut off, to say first in the next reply (once)."""
        owed, self.unheard = self.unheard, []
        return owed
