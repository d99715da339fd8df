"""Cost events: the per-day cost query (served by ix_cost_events_campaign_id_occurred_at)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import table
from reautod.store.sql import utc_day

cost_events = table(m.CostEvent)


@dataclass(frozen=True)
class DailyCost:
    day: str  # YYYY-MM-DD, UTC
    campaign_id: uuid.UUID | None
    amount_micros: int
    events: int


def daily_cost_query(
    since: datetime, campaign_id: uuid.UUID | None = None
) -> Select[tuple[object, ...]]:
    day = utc_day(cost_events.c.occurred_at).label("day")
    query = (
        select(
            day,
            cost_events.c.campaign_id,
            func.coalesce(func.sum(cost_events.c.amount_micros), 0).label("amount_micros"),
            func.count().label("events"),
        )
        .where(cost_events.c.occurred_at >= since)
        .group_by(day, cost_events.c.campaign_id)
        .order_by(day)
    )
    if campaign_id is not None:
        query = query.where(cost_events.c.campaign_id == campaign_id)
    return query


class CostRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def daily(self, since: datetime, campaign_id: uuid.UUID | None = None) -> list[DailyCost]:
        if since.tzinfo is None:
            raise ValidationError("since must be timezone-aware")

        async def work(conn: AsyncConnection) -> list[DailyCost]:
            rows = await conn.execute(daily_cost_query(since, campaign_id))
            return [
                DailyCost(r.day, r.campaign_id, int(r.amount_micros), int(r.events)) for r in rows
            ]

        return await self.db.read(work)

    async def spent_since(self, since: datetime, campaign_id: uuid.UUID | None = None) -> int:
        """Micro-dollars spent since `since` (for one campaign, or all)."""
        if since.tzinfo is None:
            raise ValidationError("since must be timezone-aware")

        async def work(conn: AsyncConnection) -> int:
            query = select(func.coalesce(func.sum(cost_events.c.amount_micros), 0)).where(
                cost_events.c.occurred_at >= since
            )
            if campaign_id is not None:
                query = query.where(cost_events.c.campaign_id == campaign_id)
            return int((await conn.execute(query)).scalar_one())

        return await self.db.read(work)
