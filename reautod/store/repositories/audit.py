"""The append-only audit log (the database refuses UPDATE and DELETE on it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import check_limit, table, to_dataclass
from reautod.store.types import utcnow

audit_log = table(m.AuditEntry)


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]


async def insert_audit(
    conn: AsyncConnection,
    actor: str,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one entry inside the caller's transaction (so a change and its audit commit together)."""
    if not actor or not action:
        raise ValidationError("audit entries need an actor and an action")
    result = await conn.execute(
        insert(audit_log)
        .values(at=utcnow(), actor=actor, action=action, target_type=target_type,
                target_id=target_id, detail=detail or {})
        .returning(audit_log.c.id)
    )
    return int(result.scalar_one())


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(
        self,
        actor: str,
        action: str,
        *,
        target_type: str | None = None,
        target_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Record who did what to which id; `detail` must hold no personal data."""

        async def work(conn: AsyncConnection) -> int:
            return await insert_audit(conn, actor, action, target_type=target_type,
                                      target_id=target_id, detail=detail)

        return await self.db.transaction(work)

    async def recent(self, limit: int = 100) -> list[AuditRow]:
        check_limit(limit)

        async def work(conn: AsyncConnection) -> list[AuditRow]:
            rows = await conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
            return [to_dataclass(AuditRow, r) for r in rows]

        return await self.db.read(work)
