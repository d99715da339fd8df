"""Budgets (spending caps per campaign or site-wide), the alerts they fired, the spending stop.

Every change to a budget or to the stop is written together with its audit_log entry, in one
transaction: there is no change without its audit row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import BudgetAlertKind, BudgetPeriod
from reautod.store.repositories._base import table, to_dataclass
from reautod.store.repositories.audit import insert_audit
from reautod.store.sql import upsert
from reautod.store.types import utcnow

budgets = table(m.Budget)
budget_alerts = table(m.BudgetAlert)
spending_stop = table(m.SpendingStop)

GLOBAL_SCOPE = "global"


def scope_of(campaign_id: uuid.UUID | None) -> str:
    """The scope name of a budget: "global" or the campaign's id."""
    return GLOBAL_SCOPE if campaign_id is None else str(campaign_id)


@dataclass(frozen=True)
class BudgetRow:
    id: uuid.UUID
    campaign_id: uuid.UUID | None
    period: str
    limit_micros: int
    timezone: str
    created_at: datetime
    updated_at: datetime

    @property
    def scope(self) -> str:
        return scope_of(self.campaign_id)


@dataclass(frozen=True)
class BudgetAlertRow:
    id: uuid.UUID
    scope: str
    period: str
    period_start: datetime
    kind: str
    threshold_pct: int
    spent_micros: int
    limit_micros: int
    at: datetime


@dataclass(frozen=True)
class SpendingStopRow:
    stopped: bool
    reason: str | None
    actor: str
    changed_at: datetime


class BudgetRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set(
        self,
        period: BudgetPeriod,
        limit_micros: int,
        campaign_id: uuid.UUID | None = None,
        *,
        timezone: str = "UTC",
        actor: str = "system",
    ) -> BudgetRow:
        """Set the cap of one (campaign or site-wide, period); replaces an existing one."""
        if limit_micros < 0:
            raise ValidationError("a budget limit must be >= 0 micro-dollars")

        async def work(conn: AsyncConnection) -> BudgetRow:
            now = utcnow()
            where = _where(period, campaign_id)
            # NULL campaign ids never conflict in a unique index: find-then-write instead.
            existing = (await conn.execute(select(budgets).where(where))).first()
            if existing is None:
                await conn.execute(
                    budgets.insert().values(
                        id=uuid.uuid4(), campaign_id=campaign_id, period=period.value,
                        limit_micros=limit_micros, timezone=timezone, created_at=now,
                        updated_at=now,
                    )
                )
            else:
                await conn.execute(
                    update(budgets)
                    .where(budgets.c.id == existing.id)
                    .values(limit_micros=limit_micros, timezone=timezone, updated_at=now)
                )
            row = to_dataclass(BudgetRow, (await conn.execute(select(budgets).where(where))).one())
            detail: dict[str, Any] = {"period": period.value, "limit_micros": limit_micros,
                                      "timezone": timezone}
            if existing is not None:
                detail["previous_limit_micros"] = existing.limit_micros
            await insert_audit(conn, actor, "budget.set", target_type="budget",
                               target_id=row.scope, detail=detail)
            return row

        return await self.db.transaction(work)

    async def remove(self, period: BudgetPeriod, campaign_id: uuid.UUID | None = None, *,
                     actor: str = "system") -> None:
        async def work(conn: AsyncConnection) -> None:
            result = await conn.execute(delete(budgets).where(_where(period, campaign_id)))
            if result.rowcount == 0:
                raise NotFoundError(f"no {period.value} budget for {scope_of(campaign_id)}")
            await insert_audit(conn, actor, "budget.remove", target_type="budget",
                               target_id=scope_of(campaign_id), detail={"period": period.value})

        await self.db.transaction(work)

    async def all(self) -> list[BudgetRow]:
        async def work(conn: AsyncConnection) -> list[BudgetRow]:
            rows = await conn.execute(select(budgets).order_by(budgets.c.created_at))
            return [to_dataclass(BudgetRow, r) for r in rows]

        return await self.db.read(work)

    # --- alerts: once per (scope, window, kind, threshold) ---

    async def claim_alert(self, scope: str, period: BudgetPeriod, period_start: datetime,
                          kind: BudgetAlertKind, threshold_pct: int, spent_micros: int,
                          limit_micros: int, at: datetime) -> bool:
        """Record an alert; False when it already fired (here or in another daemon)."""

        async def work(conn: AsyncConnection) -> bool:
            stmt = upsert(conn, budget_alerts).values(
                id=uuid.uuid4(), scope=scope, period=period.value, period_start=period_start,
                kind=kind.value, threshold_pct=threshold_pct, spent_micros=spent_micros,
                limit_micros=limit_micros, at=at,
            ).on_conflict_do_nothing(
                index_elements=["scope", "period", "period_start", "kind", "threshold_pct"]
            ).returning(budget_alerts.c.id)
            # RETURNING, not rowcount: psycopg reports -1 for INSERT .. ON CONFLICT DO NOTHING
            return (await conn.execute(stmt)).first() is not None

        return await self.db.transaction(work)

    async def alerts_since(self, since: datetime) -> list[BudgetAlertRow]:
        async def work(conn: AsyncConnection) -> list[BudgetAlertRow]:
            rows = await conn.execute(select(budget_alerts).where(budget_alerts.c.at >= since)
                                      .order_by(budget_alerts.c.at))
            return [to_dataclass(BudgetAlertRow, r) for r in rows]

        return await self.db.read(work)

    # --- the spending stop ---

    async def stop_state(self) -> SpendingStopRow | None:
        async def work(conn: AsyncConnection) -> SpendingStopRow | None:
            row = (await conn.execute(select(spending_stop))).first()
            return None if row is None else to_dataclass(SpendingStopRow, row)

        return await self.db.read(work)

    async def set_stop(self, stopped: bool, *, actor: str, reason: str | None) -> SpendingStopRow:
        async def work(conn: AsyncConnection) -> SpendingStopRow:
            values = {"stopped": stopped, "reason": reason, "actor": actor,
                      "changed_at": utcnow()}
            stmt = upsert(conn, spending_stop).values(id=1, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
            await insert_audit(conn, actor, "budget.stop" if stopped else "budget.resume",
                               target_type="budget", target_id="spending",
                               detail={"reason": reason} if reason else {})
            return SpendingStopRow(stopped, reason, actor, values["changed_at"])  # type: ignore[arg-type]

        return await self.db.transaction(work)


def _where(period: BudgetPeriod, campaign_id: uuid.UUID | None) -> Any:
    return (budgets.c.period == period.value) & (
        budgets.c.campaign_id.is_(None) if campaign_id is None
        else budgets.c.campaign_id == campaign_id
    )
