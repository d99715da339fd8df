"""Cost events and what is computed from them: spend in a window (budgets), the per-day query
(served by ix_cost_events_campaign_id_occurred_at), reconciliation with Twilio's prices, and cost
per call, lead, qualified lead and booking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import CostService
from reautod.store.repositories._base import table
from reautod.store.sql import upsert, utc_day

cost_events = table(m.CostEvent)
reconciliations = table(m.CostReconciliation)

# The provider of the ledger lines Twilio's call `price` covers (voice minutes; media streams
# and AMD are billed apart). Written by reautod.cost.meters.
TWILIO_VOICE_PROVIDER = "twilio"


@dataclass(frozen=True)
class Reconciliation:
    """One call: what we metered for its voice minutes and what Twilio says it charged."""

    call_id: uuid.UUID | None
    call_sid: str
    campaign_id: uuid.UUID | None
    metered_micros: int
    reported_micros: int
    price_unit: str
    reported_at: datetime

    @property
    def difference_micros(self) -> int:
        """reported - metered: positive when the ledger under-counted."""
        return self.reported_micros - self.metered_micros


@dataclass(frozen=True)
class LedgerError:
    calls: int
    metered_micros: int
    reported_micros: int
    absolute_error_micros: int


@dataclass(frozen=True)
class CallCost:
    """One call's ledger: the total and its split by service and by tier, in micro-dollars."""

    total_micros: int
    by_service: dict[str, int]
    by_tier: dict[str, int]
    rows: int

    def wire(self) -> dict[str, object]:
        return {"total_micros": self.total_micros, "by_service": dict(self.by_service),
                "by_tier": dict(self.by_tier), "rows": self.rows}


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
        _aware(since, None)

        async def work(conn: AsyncConnection) -> list[DailyCost]:
            rows = await conn.execute(daily_cost_query(since, campaign_id))
            return [
                DailyCost(r.day, r.campaign_id, int(r.amount_micros), int(r.events)) for r in rows
            ]

        return await self.db.read(work)

    async def spent_since(self, since: datetime, campaign_id: uuid.UUID | None = None) -> int:
        """Micro-dollars spent since `since` (for one campaign, or all)."""
        return await self.spent_between(since, None, campaign_id)

    async def spent_between(self, start: datetime, end: datetime | None,
                            campaign_id: uuid.UUID | None = None, *, tier: str | None = None
                            ) -> int:
        """Micro-dollars spent in [start, end) (end None: open), one campaign or all, one tier or all."""
        _aware(start, end)

        async def work(conn: AsyncConnection) -> int:
            query = select(func.coalesce(func.sum(cost_events.c.amount_micros), 0)).where(
                cost_events.c.occurred_at >= start
            )
            if end is not None:
                query = query.where(cost_events.c.occurred_at < end)
            if campaign_id is not None:
                query = query.where(cost_events.c.campaign_id == campaign_id)
            if tier is not None:
                query = query.where(cost_events.c.tier == tier)
            return int((await conn.execute(query)).scalar_one())

        return await self.db.read(work)

    async def metered_telephony(self, call_id: uuid.UUID) -> int:
        """What the ledger holds for a call's Twilio voice minutes (what Twilio's call price covers)."""

        async def work(conn: AsyncConnection) -> int:
            query = select(func.coalesce(func.sum(cost_events.c.amount_micros), 0)).where(
                cost_events.c.call_id == call_id,
                cost_events.c.service == CostService.TELEPHONY.value,
                cost_events.c.provider == TWILIO_VOICE_PROVIDER,
            )
            return int((await conn.execute(query)).scalar_one())

        return await self.db.read(work)

    async def for_call(self, call_id: uuid.UUID) -> CallCost:
        """A call's cost so far, from its ledger rows (all zero when it has none)."""
        c = cost_events.c

        async def work(conn: AsyncConnection) -> CallCost:
            rows = (await conn.execute(
                select(c.service, c.tier, func.sum(c.amount_micros), func.count())
                .where(c.call_id == call_id).group_by(c.service, c.tier))).all()
            by_service: dict[str, int] = {}
            by_tier: dict[str, int] = {}
            for service, tier, amount, _count in rows:
                by_service[service] = by_service.get(service, 0) + int(amount)
                by_tier[tier or ""] = by_tier.get(tier or "", 0) + int(amount)
            return CallCost(sum(by_service.values()), by_service, by_tier,
                            sum(int(r[3]) for r in rows))

        return await self.db.read(work)

    async def record_reconciliation(self, entry: Reconciliation) -> bool:
        """Store one call's reconciliation; False if that call was reconciled before."""

        async def work(conn: AsyncConnection) -> bool:
            stmt = upsert(conn, reconciliations).values(
                id=uuid.uuid4(), call_id=entry.call_id, call_sid=entry.call_sid,
                campaign_id=entry.campaign_id, metered_micros=entry.metered_micros,
                reported_micros=entry.reported_micros, difference_micros=entry.difference_micros,
                price_unit=entry.price_unit, reported_at=entry.reported_at,
            ).on_conflict_do_nothing(index_elements=["call_sid"]).returning(reconciliations.c.id)
            return (await conn.execute(stmt)).first() is not None  # rowcount is -1 on psycopg

        return await self.db.transaction(work)

    async def ledger_error(self, since: datetime) -> LedgerError:
        """How far the ledger was from Twilio's prices on calls reconciled since `since`."""
        _aware(since, None)
        r = reconciliations.c

        async def work(conn: AsyncConnection) -> LedgerError:
            row = (await conn.execute(
                select(func.count(), func.coalesce(func.sum(r.metered_micros), 0),
                       func.coalesce(func.sum(r.reported_micros), 0),
                       func.coalesce(func.sum(func.abs(r.difference_micros)), 0))
                .where(r.reported_at >= since))).one()
            return LedgerError(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

        return await self.db.read(work)


def _aware(start: datetime, end: datetime | None) -> None:
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise ValidationError("times must be timezone-aware")
