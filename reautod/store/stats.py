"""Analytics: daily aggregates per campaign, computed by one SQL query on either backend.

attempts = calls placed; connects = calls answered (answered_at set); human_answers = AMD said
human; qualified = outcome qualified or booked; booked = outcome booked; average duration over
connected calls; cost per call = all cost events of that day and campaign / attempts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import QUALIFIED_OUTCOMES, AmdResult, CallOutcome
from reautod.store.repositories._base import table
from reautod.store.sql import count_if, utc_day

calls = table(m.Call)
cost_events = table(m.CostEvent)
campaigns = table(m.Campaign)


@dataclass(frozen=True)
class DailyCampaignStats:
    day: str  # YYYY-MM-DD (UTC)
    campaign_id: uuid.UUID | None
    campaign: str | None
    attempts: int
    connects: int
    human_answers: int
    qualified: int
    booked: int
    average_duration_s: float | None
    cost_micros: int
    cost_per_call_micros: int | None


def daily_stats_query(
    since: datetime, campaign_id: uuid.UUID | None = None
) -> Select[tuple[object, ...]]:
    call_day = utc_day(calls.c.created_at).label("day")
    per_call = (
        select(
            call_day,
            calls.c.campaign_id,
            func.count().label("attempts"),
            func.count(calls.c.answered_at).label("connects"),
            count_if(calls.c.amd_result == AmdResult.HUMAN.value).label("human_answers"),
            count_if(calls.c.outcome.in_([o.value for o in QUALIFIED_OUTCOMES])).label("qualified"),
            count_if(calls.c.outcome == CallOutcome.BOOKED.value).label("booked"),
            func.avg(case((calls.c.answered_at.is_not(None), calls.c.duration_ms))).label("avg_ms"),
        )
        .where(calls.c.created_at >= since)
        .group_by(call_day, calls.c.campaign_id)
    )
    cost_day = utc_day(cost_events.c.occurred_at).label("day")
    per_cost = (
        select(
            cost_day,
            cost_events.c.campaign_id,
            func.sum(cost_events.c.amount_micros).label("cost_micros"),
        )
        .where(cost_events.c.occurred_at >= since)
        .group_by(cost_day, cost_events.c.campaign_id)
    )
    if campaign_id is not None:
        per_call = per_call.where(calls.c.campaign_id == campaign_id)
        per_cost = per_cost.where(cost_events.c.campaign_id == campaign_id)
    c = per_call.subquery("c")
    k = per_cost.subquery("k")
    return (
        select(
            c.c.day,
            c.c.campaign_id,
            campaigns.c.name.label("campaign"),
            c.c.attempts,
            c.c.connects,
            c.c.human_answers,
            c.c.qualified,
            c.c.booked,
            c.c.avg_ms,
            func.coalesce(k.c.cost_micros, 0).label("cost_micros"),
        )
        .select_from(
            c.outerjoin(
                k, and_(k.c.day == c.c.day, k.c.campaign_id.is_not_distinct_from(c.c.campaign_id))
            ).outerjoin(campaigns, campaigns.c.id == c.c.campaign_id)
        )
        .order_by(c.c.day, campaigns.c.name)
    )


async def daily_campaign_stats(
    db: Database, since: datetime, campaign_id: uuid.UUID | None = None
) -> list[DailyCampaignStats]:
    """One row per (UTC day, campaign) with calls since `since`."""
    if since.tzinfo is None:
        raise ValidationError("since must be timezone-aware")

    async def work(conn: AsyncConnection) -> list[DailyCampaignStats]:
        out = []
        for r in await conn.execute(daily_stats_query(since, campaign_id)):
            attempts = int(r.attempts)
            cost = int(r.cost_micros)
            out.append(
                DailyCampaignStats(
                    day=str(r.day),
                    campaign_id=r.campaign_id,
                    campaign=r.campaign,
                    attempts=attempts,
                    connects=int(r.connects),
                    human_answers=int(r.human_answers or 0),
                    qualified=int(r.qualified or 0),
                    booked=int(r.booked or 0),
                    average_duration_s=None if r.avg_ms is None else round(float(r.avg_ms) / 1000, 1),
                    cost_micros=cost,
                    cost_per_call_micros=cost // attempts if attempts else None,
                )
            )
        return out

    return await db.read(work)
