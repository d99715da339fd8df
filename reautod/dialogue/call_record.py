"""What the qualifying agent did on one call, as `reautoctl call show` shows it: the playbook
version and A/B variant it ran, its stage transitions, every score with its reasons, the tools
it used or was refused, and the appointment it booked. Read from the dialogue's own records
(`agent_transitions`, `lead_scores`, `agent_decisions`, `appointments`) and the call row."""

from __future__ import annotations

from typing import Any

from reautod.dialogue.results import Result
from reautod.store.database import Database
from reautod.store.repositories import AppointmentRepository, CallRepository
from reautod.store.repositories.agent_transitions import AgentTransitionRepository
from reautod.store.repositories.calls import CallRow
from reautod.store.repositories.lead_scores import LeadScoreRepository


class StageMove(Result):
    seq: int
    from_stage: str | None
    to_stage: str
    reason: str | None
    at: str


class FactorInfo(Result):
    fact: str
    value: str | float | None
    weight: float
    points: int


class ScoreInfo(Result):
    score: int
    reason: str | None  # "65/100 qualified; is_owner=yes -> 100; ..."
    factors: list[FactorInfo]
    at: str


class DecisionInfo(Result):
    seq: int
    stage: str
    tool: str
    status: str  # proposed, done, refused, failed
    spoken: str | None  # the time as the caller heard it, where the tool had one
    detail: str | None
    at: str


class AppointmentInfo(Result):
    id: str
    starts_at: str  # UTC
    ends_at: str
    timezone: str | None  # the lead's, for speaking it
    status: str


class AgentRecord(Result):
    """The agent's side of one call (`call.show`'s `agent`)."""

    playbook: str | None
    version: str | None
    variant: str | None
    outcome: str | None
    disposition: str | None
    score: int | None  # the last one set
    transitions: list[StageMove]
    scores: list[ScoreInfo]
    decisions: list[DecisionInfo]
    appointment: AppointmentInfo | None


def _factors(stored: dict[str, Any]) -> list[FactorInfo]:
    """Heaviest first (Postgres' JSONB keeps no key order)."""
    out = []
    for fact, item in stored.items():
        if isinstance(item, dict):
            out.append(FactorInfo(fact=fact, value=item.get("value"),
                                  weight=float(item.get("weight", 0)),
                                  points=int(item.get("points", 0))))
    return sorted(out, key=lambda f: (-f.weight, f.fact))


async def agent_record(db: Database, call: CallRow) -> AgentRecord | None:
    """The agent's record of `call`; None for a call no playbook answered."""
    moves = await CallRepository(db).transitions(call.id)
    if call.playbook is None and not moves:
        return None
    scores = await LeadScoreRepository(db).history(call_id=call.id)
    decisions = await AgentTransitionRepository(db).decisions(call.id)
    appointment = await AppointmentRepository(db).of_call(call.id)
    return AgentRecord(
        playbook=call.playbook, version=call.prompt_version, variant=call.prompt_variant,
        outcome=call.outcome, disposition=call.disposition,
        score=scores[-1].score if scores else None,
        transitions=[StageMove(seq=t.seq, from_stage=t.from_agent, to_stage=t.to_agent,
                               reason=t.reason, at=t.at.isoformat()) for t in moves],
        scores=[ScoreInfo(score=s.score, reason=s.reason, factors=_factors(s.factors),
                          at=s.at.isoformat()) for s in scores],
        decisions=[DecisionInfo(seq=d.seq, stage=d.stage, tool=d.tool, status=d.status,
                                spoken=_spoken(d.args), detail=d.detail, at=d.at.isoformat())
                   for d in decisions],
        appointment=None if appointment is None else AppointmentInfo(
            id=str(appointment.id), starts_at=appointment.starts_at.isoformat(),
            ends_at=appointment.ends_at.isoformat(), timezone=appointment.timezone,
            status=appointment.status))


def _spoken(args: dict[str, Any]) -> str | None:
    spoken = args.get("spoken")
    return spoken if isinstance(spoken, str) else None

