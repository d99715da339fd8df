"""Lead score history: every score the agent set, with its factors and reason (written through
the ScoreUpdate record, which also copies the latest score onto the lead)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import check_limit, table, to_dataclass

lead_scores = table(m.LeadScore)


@dataclass(frozen=True)
class LeadScoreRow:
    id: uuid.UUID
    contact_id: uuid.UUID | None
    lead_id: uuid.UUID | None
    call_id: uuid.UUID | None
    score: int
    factors: dict[str, Any]
    reason: str | None
    at: datetime


class LeadScoreRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def history(self, *, lead_id: uuid.UUID | None = None,
                      contact_id: uuid.UUID | None = None,
                      call_id: uuid.UUID | None = None, limit: int = 100) -> list[LeadScoreRow]:
        """Scores of a lead, a contact or a call, oldest first (the last is the current one)."""
        check_limit(limit, 1000)
        filters = [(lead_scores.c.lead_id, lead_id), (lead_scores.c.contact_id, contact_id),
                   (lead_scores.c.call_id, call_id)]
        given = [column == value for column, value in filters if value is not None]
        if len(given) != 1:
            raise ValidationError("give exactly one of lead_id, contact_id, call_id")

        async def work(conn: AsyncConnection) -> list[LeadScoreRow]:
            newest = (select(lead_scores).where(given[0])
                      .order_by(lead_scores.c.at.desc(), lead_scores.c.id).limit(limit).subquery())
            rows = await conn.execute(select(newest).order_by(newest.c.at, newest.c.id))
            return [to_dataclass(LeadScoreRow, r) for r in rows]

        return await self.db.read(work)
