"""Cost per call, per lead, per qualified lead and per booking, and cost per call by voice tier.

Both look at the calls created in [since, until) (one campaign or all) and the ledger rows of
those calls. Per-unit figures are the total divided by the count, rounded half up to a whole
micro-dollar once; None when the count is 0. A call's tier is "premium" when any of its ledger
rows is premium speech, else "local".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import QUALIFIED_OUTCOMES, CallOutcome, VoiceTier
from reautod.store.repositories._base import table

calls = table(m.Call)
cost_events = table(m.CostEvent)


@dataclass(frozen=True)
class CostPerOutcome:
    total_micros: int
    calls: int
    leads: int
    qualified_leads: int
    bookings: int
    per_call_micros: int | None
    per_lead_micros: int | None
    per_qualified_lead_micros: int | None
    per_booking_micros: int | None


@dataclass(frozen=True)
class TierCost:
    tier: str  # VoiceTier value
    calls: int
    total_micros: int
    per_call_micros: int | None


def _per(total: int, count: int) -> int | None:
    if count == 0:
        return None
    return int((Decimal(total) / count).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _window(since: datetime, until: datetime | None,
            campaign_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    if since.tzinfo is None or (until is not None and until.tzinfo is None):
        raise ValidationError("times must be timezone-aware")
    where = [calls.c.created_at >= since]
    if until is not None:
        where.append(calls.c.created_at < until)
    if campaign_id is not None:
        where.append(calls.c.campaign_id == campaign_id)
    return where


async def cost_per_outcome(db: Database, since: datetime, until: datetime | None = None,
                           campaign_id: uuid.UUID | None = None) -> CostPerOutcome:
    """For `reautoctl stats`: what a call, a lead, a qualified lead and a booking cost."""
    where = _window(since, until, campaign_id)
    qualified = calls.c.outcome.in_([o.value for o in QUALIFIED_OUTCOMES])

    async def work(conn: AsyncConnection) -> CostPerOutcome:
        counts = (await conn.execute(select(
            func.count(),
            func.count(distinct(calls.c.lead_id)),
            func.count(distinct(case((qualified, calls.c.lead_id)))),
            func.coalesce(func.sum(case((calls.c.outcome == CallOutcome.BOOKED.value, 1),
                                        else_=0)), 0),
        ).where(*where))).one()
        total = (await conn.execute(
            select(func.coalesce(func.sum(cost_events.c.amount_micros), 0))
            .select_from(cost_events.join(calls, cost_events.c.call_id == calls.c.id))
            .where(*where))).scalar_one()
        n_calls, leads, qualified_leads, bookings = (int(v) for v in counts)
        total = int(total)
        return CostPerOutcome(total, n_calls, leads, qualified_leads, bookings,
                              _per(total, n_calls), _per(total, leads),
                              _per(total, qualified_leads), _per(total, bookings))

    return await db.read(work)


async def cost_by_tier(db: Database, since: datetime, until: datetime | None = None,
                       campaign_id: uuid.UUID | None = None) -> list[TierCost]:
    """Cost per call of calls that used the premium voice against those that did not."""
    where = _window(since, until, campaign_id)
    premium_amount = case((cost_events.c.tier == VoiceTier.PREMIUM.value,
                           cost_events.c.amount_micros), else_=0)
    per_call = (
        select(cost_events.c.call_id, func.sum(cost_events.c.amount_micros).label("total"),
               func.sum(premium_amount).label("premium"))
        .select_from(cost_events.join(calls, cost_events.c.call_id == calls.c.id))
        .where(*where).group_by(cost_events.c.call_id).subquery()
    )
    tier = case((per_call.c.premium > 0, VoiceTier.PREMIUM.value),
                else_=VoiceTier.LOCAL.value).label("tier")

    async def work(conn: AsyncConnection) -> list[TierCost]:
        rows = await conn.execute(select(tier, func.count(), func.sum(per_call.c.total))
                                  .group_by(tier).order_by(tier))
        return [TierCost(str(r[0]), int(r[1]), int(r[2]), _per(int(r[2]), int(r[1])))
                for r in rows]

    return await db.read(work)
