"""Fakes of the agent's ports that record what they got, and a driver that plays a persona's
lines through a CallAgent the way the pipeline will (generating LLM parts with a real
`LanguageModel` implementation and reporting what was heard)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reautod.conversation import Generate
from reautod.dialogue.agent import CallAgent
from reautod.dialogue.playbook_file import LoadedPlaybook, load_playbook_file
from reautod.dialogue.ports import LeadChanges, LeadContext
from reautod.dialogue.replies import After, AgentReply, CallResult, EndCause
from reautod.dialogue.seam import to_reply
from reautod.engines.base import LanguageModel
from reautod.pipeline.sentences import SentenceSplitter, ends_sentence
from reautod.store.records import (
    AgentDecisionRecord,
    AgentTransitionRecord,
    PlaybookAssigned,
    Record,
    ScoreUpdate,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "reautod" / "dialogue" / "examples"
# Tuesday 2026-12-08, 10:00 in Chicago, 09:00 in Denver.
NOW = datetime(2026, 12, 8, 16, 0, tzinfo=UTC)


def example(name: str) -> LoadedPlaybook:
    return load_playbook_file(EXAMPLES / f"{name}.yaml")


def clock() -> datetime:
    return NOW


@dataclass
class Records:
    """RecordSink that keeps every record."""

    records: list[Record] = field(default_factory=list)
    accept: bool = True

    def submit(self, record: Record) -> bool:
        if self.accept:
            self.records.append(record)
        return self.accept

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [r for r in self.records if isinstance(r, kind)]

    def transitions(self) -> list[tuple[str | None, str]]:
        return [(r.from_agent, r.to_agent) for r in self.of(AgentTransitionRecord)]

    def scores(self) -> list[int]:
        return [r.score for r in self.of(ScoreUpdate)]

    def decisions(self) -> list[tuple[str, str]]:
        return [(r.tool, r.status.value) for r in self.of(AgentDecisionRecord)]

    def assignment(self) -> PlaybookAssigned:
        [assigned] = self.of(PlaybookAssigned)
        return assigned


@dataclass
class Effects:
    """CallEffects that records each consequence."""

    opted_out: list[str] = field(default_factory=list)
    callbacks: list[datetime] = field(default_factory=list)
    updates: list[LeadChanges] = field(default_factory=list)
    fail_with: Exception | None = None

    async def opt_out(self, lead: LeadContext, *, reason: str) -> None:
        if self.fail_with:
            raise self.fail_with
        self.opted_out.append(lead.phone)

    async def schedule_callback(self, lead: LeadContext, at: datetime, *, reason: str) -> None:
        if self.fail_with:
            raise self.fail_with
        self.callbacks.append(at)

    async def update_lead(self, lead: LeadContext, changes: LeadChanges) -> None:
        self.updates.append(changes)


@dataclass
class Observer:
    events: list[tuple[str, object]] = field(default_factory=list)

    def transition(self, call_id: uuid.UUID, from_stage: str | None, to_stage: str,
                   reason: str) -> None:
        self.events.append(("transition", to_stage))

    def scored(self, call_id: uuid.UUID, score: int, qualified: bool) -> None:
        self.events.append(("score", score))

    def ended(self, call_id: uuid.UUID, outcome: str, booked: bool) -> None:
        self.events.append(("ended", outcome))


def lead(**overrides: object) -> LeadContext:
    values: dict[str, object] = dict(
        phone="+13125550123", timezone="America/Chicago", lead_id=uuid.uuid4(),
        contact_id=uuid.uuid4(), campaign_id=uuid.uuid4(), name="Dana Smith", city="Evanston",
        source="county records", state="IL", custom={"street": "Maple Street"})
    values.update(overrides)
    return LeadContext(**values)  # type: ignore[arg-type]


@dataclass
class Conversation:
    replies: list[AgentReply]
    heard: list[str]  # what the caller heard, reply by reply
    result: CallResult


async def generated(llm: LanguageModel, part: Generate, call_id: str) -> str:
    """What the pipeline's ReplyWriter says of `part`: the model's text, cut into pieces; with
    `part.sentences`, up to that many sentences and no unfinished one."""
    splitter, pieces, left = SentenceSplitter(), [], part.sentences
    async for chunk in llm.stream_chat(list(part.messages), call_id=call_id,
                                       max_tokens=part.max_tokens, model=part.model):
        for piece in await splitter.push(chunk.text):
            pieces.append(piece)
            left = None if left is None else left - ends_sentence(piece)
            if left is not None and left <= 0:
                return " ".join(pieces)
    rest = await splitter.flush()
    if rest is not None and (left is None or ends_sentence(rest)):
        pieces.append(rest)
    return " ".join(pieces)


async def converse(agent: CallAgent, lines: list[str], llm: LanguageModel) -> Conversation:
    """Play `lines` as the caller; stop when the agent hangs up or transfers, or lines run out
    (then the caller hangs up)."""
    replies: list[AgentReply] = []
    heard: list[str] = []

    async def play(reply: AgentReply) -> None:
        """The reply's parts in the seam's order (to_reply); a model that writes nothing ends
        the reply in its fallback, the rest dropped, as the pipeline's speech does."""
        replies.append(reply)
        said: list[str] = []
        for part in to_reply(reply).parts:
            if isinstance(part, Generate):
                assert reply.llm is not None
                written = await generated(llm, part, str(agent.call.call_id))
                if not written:
                    said.append(reply.llm.fallback)
                    break
                said.append(written)
            else:
                said.append(part.text)
        text = " ".join(said)
        if reply.llm is not None:
            agent.heard(reply.id, text)
        heard.append(text)

    await play(await agent.opening())
    for said in lines:
        if replies[-1].after is not After.LISTEN:
            raise AssertionError(f"the agent ended the call before the caller said {said!r}")
        await play(await agent.respond(said))
    cause = EndCause.AGENT if replies[-1].after is not After.LISTEN else EndCause.CALLER_HUNG_UP
    return Conversation(replies, heard, await agent.end(cause))
