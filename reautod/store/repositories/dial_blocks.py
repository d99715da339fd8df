"""The blocked-dial log: each claimed lead the dialer did not dial, with the rule that blocked it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import check_limit, table, to_dataclass

dial_blocks = table(m.DialBlock)


@dataclass(frozen=True)
class DialBlockRow:
    id: uuid.UUID
    lead_id: uuid.UUID
    campaign_id: uuid.UUID
    reason: str
    rule_code: str
    detail: str
    source: str
    retry_at: datetime | None
    at: datetime


class DialBlockRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        lead_id: uuid.UUID,
        campaign_id: uuid.UUID,
        reason: str,
        rule_code: str,
        detail: str,
        source: str,
        retry_at: datetime | None,
        at: datetime,
    ) -> uuid.UUID:
        for name, value in (("at", at), ("retry_at", retry_at)):
            if value is not None and value.tzinfo is None:
                raise ValidationError(f"{name} must be timezone-aware")
        if not 0 < len(reason) <= 16 or not 0 < len(rule_code) <= 64:
            raise ValidationError("blocked dial: reason 1-16 and rule code 1-64 characters")
        block_id = uuid.uuid4()

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(insert(dial_blocks).values(
                id=block_id, lead_id=lead_id, campaign_id=campaign_id, reason=reason,
                rule_code=rule_code, detail=detail, source=source, retry_at=retry_at, at=at,
            ))

        await self.db.transaction(work)
        return block_id

    async def recent(
        self, *, campaign_id: uuid.UUID | None = None, lead_id: uuid.UUID | None = None,
        limit: int = 100,
    ) -> list[DialBlockRow]:
        """Newest first."""
        check_limit(limit, 1000)

        async def work(conn: AsyncConnection) -> list[DialBlockRow]:
            query = select(dial_blocks).order_by(dial_blocks.c.at.desc()).limit(limit)
            if campaign_id is not None:
                query = query.where(dial_blocks.c.campaign_id == campaign_id)
            if lead_id is not None:
                query = query.where(dial_blocks.c.lead_id == lead_id)
            return [to_dataclass(DialBlockRow, r) for r in await conn.execute(query)]

        return await self.db.read(work)

    async def counts_by_rule(self, campaign_id: uuid.UUID) -> dict[str, int]:
        async def work(conn: AsyncConnection) -> dict[str, int]:
            rows = await conn.execute(
                select(dial_blocks.c.rule_code, func.count())
                .where(dial_blocks.c.campaign_id == campaign_id)
                .group_by(dial_blocks.c.rule_code)
            )
            return {code: int(n) for code, n in rows}

        return await self.db.read(work)
