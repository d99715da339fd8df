"""Budgets: spending caps per campaign or site-wide (appointments live in appointments.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import BudgetPeriod
from reautod.store.repositories._base import table, to_dataclass
from reautod.store.types import utcnow

budgets = table(m.Budget)


@dataclass(frozen=True)
class BudgetRow:
    id: uuid.UUID
    campaign_id: uuid.UUID | None
    period: str
    limit_micros: int
    created_at: datetime
    updated_at: datetime


class BudgetRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set(
        self, period: BudgetPeriod, limit_micros: int, campaign_id: uuid.UUID | None = None
    ) -> BudgetRow:
        """Set the cap of one (campaign or site-wide, period); replaces an existing one."""
        if limit_micros < 0:
            raise ValidationError("a budget limit must be >= 0 micro-dollars")

        async def work(conn: AsyncConnection) -> BudgetRow:
            now = utcnow()
            where = (budgets.c.period == period.value) & (
                budgets.c.campaign_id.is_(None)
                if campaign_id is None
                else budgets.c.campaign_id == campaign_id
            )
            # NULL campaign ids never conflict in a unique index: find-then-write instead.
            existing = (await conn.execute(select(budgets.c.id).where(where))).first()
            if existing is None:
                await conn.execute(
                    budgets.insert().values(
                        id=uuid.uuid4(), campaign_id=campaign_id, period=period.value,
                        limit_micros=limit_micros, created_at=now, updated_at=now,
                    )
                )
            else:
                await conn.execute(
                    update(budgets)
                    .where(budgets.c.id == existing.id)
                    .values(limit_micros=limit_micros, updated_at=now)
                )
            return to_dataclass(BudgetRow, (await conn.execute(select(budgets).where(where))).one())

        return await self.db.transaction(work)

    async def all(self) -> list[BudgetRow]:
        async def work(conn: AsyncConnection) -> list[BudgetRow]:
            rows = await conn.execute(select(budgets).order_by(budgets.c.created_at))
            return [to_dataclass(BudgetRow, r) for r in rows]

        return await self.db.read(work)
