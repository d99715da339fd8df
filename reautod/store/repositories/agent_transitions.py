"""What the agent did on calls: its decisions (tools, with evidence) and how calls moved through
a campaign's stages (the stage funnel). A call's own transitions: CallRepository.transitions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import table, to_dataclass

decisions = table(m.AgentDecision)
transitions = table(m.AgentTransition)
calls = table(m.Call)


@dataclass(frozen=True)
class AgentDecisionRow:
    id: uuid.UUID
    seq: int
    stage: str
    tool: str
    status: str
    args: dict[str, Any]
    evidence: dict[str, Any]
    detail: str | None
    at: datetime


class AgentTransitionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def decisions(self, call_id: uuid.UUID) -> list[AgentDecisionRow]:
        """A call's tool decisions, in order."""

        async def work(conn: AsyncConnection) -> list[AgentDecisionRow]:
            rows = await conn.execute(
                select(decisions).where(decisions.c.call_id == call_id).order_by(decisions.c.seq))
            return [to_dataclass(AgentDecisionRow, r) for r in rows]

        return await self.db.read(work)

    async def stage_reach(self, campaign_id: uuid.UUID, since: datetime) -> dict[str, int]:
        """Stage -> calls of the campaign (created since `since`) that entered it."""
        if since.tzinfo is None:
            raise ValidationError("since must be timezone-aware")

        async def work(conn: AsyncConnection) -> dict[str, int]:
            rows = await conn.execute(
                select(transitions.c.to_agent, func.count(distinct(transitions.c.call_id)))
                .join(calls, calls.c.id == transitions.c.call_id)
                .where(calls.c.campaign_id == campaign_id, calls.c.created_at >= since)
                .group_by(transitions.c.to_agent)
            )
            return {stage: int(n) for stage, n in rows}

        return await self.db.read(work)
