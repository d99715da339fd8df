"""The do-not-call list (kept apart from contacts so it survives their erasure)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import DncSource
from reautod.store.repositories._base import check_e164, table
from reautod.store.sql import upsert
from reautod.store.types import utcnow

dnc_entries = table(m.DncEntry)
contacts = table(m.Contact)


class DncRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        phone_e164: str,
        source: DncSource,
        *,
        reason: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """Suppress a number (idempotent) and flag the matching contact."""
        check_e164(phone_e164)
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValidationError("expires_at must be timezone-aware")

        async def work(conn: AsyncConnection) -> None:
            stmt = upsert(conn, dnc_entries).values(
                id=uuid.uuid4(), phone_e164=phone_e164, source=source.value, reason=reason,
                added_at=utcnow(), expires_at=expires_at,
            )
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["phone_e164"]))
            await conn.execute(
                contacts.update().where(contacts.c.phone_e164 == phone_e164).values(dnc=True)
            )

        await self.db.transaction(work)

    async def contains(self, phone_e164: str, at: datetime | None = None) -> bool:
        check_e164(phone_e164)
        when = at or utcnow()

        async def work(conn: AsyncConnection) -> bool:
            row = (
                await conn.execute(
                    select(dnc_entries.c.id).where(
                        dnc_entries.c.phone_e164 == phone_e164,
                        or_(dnc_entries.c.expires_at.is_(None), dnc_entries.c.expires_at > when),
                    )
                )
            ).first()
            return row is not None

        return await self.db.read(work)

    async def remove(self, phone_e164: str) -> bool:
        check_e164(phone_e164)

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(delete(dnc_entries).where(dnc_entries.c.phone_e164 == phone_e164))
            await conn.execute(
                contacts.update().where(contacts.c.phone_e164 == phone_e164).values(dnc=False)
            )
            return bool(result.rowcount)

        return await self.db.transaction(work)
