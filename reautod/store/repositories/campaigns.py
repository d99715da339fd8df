"""Campaigns: create (idempotent by name), read, change status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import CampaignStatus
from reautod.store.repositories._base import table, to_dataclass
from reautod.store.sql import upsert
from reautod.store.types import utcnow

campaigns = table(m.Campaign)


@dataclass(frozen=True)
class CampaignRow:
    id: uuid.UUID
    name: str
    status: str
    agent_config: dict[str, Any]
    calling_window: dict[str, Any]
    pacing: dict[str, Any]
    max_attempts: int
    retry_delay_s: int
    budget_micros: int | None
    created_at: datetime
    updated_at: datetime


class CampaignRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        name: str,
        *,
        agent_config: dict[str, Any] | None = None,
        calling_window: dict[str, Any] | None = None,
        pacing: dict[str, Any] | None = None,
        max_attempts: int = 3,
        retry_delay_s: int = 3600,
        budget_micros: int | None = None,
        status: CampaignStatus = CampaignStatus.DRAFT,
    ) -> CampaignRow:
        """Create the campaign, or return the existing one of that name unchanged."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationError("campaign name must be 1-200 characters")
        if max_attempts < 1 or retry_delay_s < 0 or (budget_micros is not None and budget_micros < 0):
            raise ValidationError("max_attempts >= 1, retry_delay_s >= 0, budget_micros >= 0")

        async def work(conn: AsyncConnection) -> CampaignRow:
            now = utcnow()
            stmt = upsert(conn, campaigns).values(
                id=uuid.uuid4(),
                name=name,
                status=status.value,
                agent_config=agent_config or {},
                calling_window=calling_window or {},
                pacing=pacing or {},
                max_attempts=max_attempts,
                retry_delay_s=retry_delay_s,
                budget_micros=budget_micros,
                created_at=now,
                updated_at=now,
            )
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            row = (await conn.execute(select(campaigns).where(campaigns.c.name == name))).one()
            return to_dataclass(CampaignRow, row)

        return await self.db.transaction(work)

    async def get(self, campaign_id: uuid.UUID) -> CampaignRow:
        async def work(conn: AsyncConnection) -> CampaignRow:
            row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).first()
            if row is None:
                raise NotFoundError(f"no campaign {campaign_id}")
            return to_dataclass(CampaignRow, row)

        return await self.db.read(work)

    async def find(self, name_or_id: str) -> CampaignRow:
        """By id (a UUID string) or by exact name; NotFoundError otherwise."""
        try:
            return await self.get(uuid.UUID(name_or_id))
        except ValueError:
            pass

        async def work(conn: AsyncConnection) -> CampaignRow:
            row = (await conn.execute(select(campaigns).where(campaigns.c.name == name_or_id))).first()
            if row is None:
                raise NotFoundError(f"no campaign named {name_or_id!r}")
            return to_dataclass(CampaignRow, row)

        return await self.db.read(work)

    async def list(self) -> list[CampaignRow]:
        async def work(conn: AsyncConnection) -> list[CampaignRow]:
            rows = await conn.execute(select(campaigns).order_by(campaigns.c.created_at))
            return [to_dataclass(CampaignRow, r) for r in rows]

        return await self.db.read(work)

    async def set_status(self, campaign_id: uuid.UUID, status: CampaignStatus) -> None:
        async def work(conn: AsyncConnection) -> None:
            result = await conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(status=status.value, updated_at=utcnow())
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no campaign {campaign_id}")

        await self.db.transaction(work)
