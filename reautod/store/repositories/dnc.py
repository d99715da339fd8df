"""The do-not-call list (kept apart from contacts so it survives their erasure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import DncSource
from reautod.store.repositories._base import check_e164, table, to_dataclass
from reautod.store.sql import upsert
from reautod.store.types import utcnow

dnc_entries = table(m.DncEntry)
contacts = table(m.Contact)


@dataclass(frozen=True)
class DncEntryRow:
    id: uuid.UUID
    phone_e164: str
    campaign_id: uuid.UUID | None
    source: str
    channel: str | None
    reason: str | None
    added_at: datetime
    expires_at: datetime | None


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
        campaign_id: uuid.UUID | None = None,
        channel: str | None = None,
        added_at: datetime | None = None,
    ) -> bool:
        """Suppress a number (idempotent), globally or for one campaign; a global entry also
        flags the matching contact. True if the entry was new."""
        check_e164(phone_e164)
        for name, value in (("expires_at", expires_at), ("added_at", added_at)):
            if value is not None and value.tzinfo is None:
                raise ValidationError(f"{name} must be timezone-aware")
        if channel is not None and not 0 < len(channel) <= 16:
            raise ValidationError("DNC channel must be 1-16 characters")

        async def work(conn: AsyncConnection) -> bool:
            stmt = upsert(conn, dnc_entries).values(
                id=uuid.uuid4(), phone_e164=phone_e164, source=source.value, reason=reason,
                added_at=added_at or utcnow(), expires_at=expires_at, campaign_id=campaign_id,
                channel=channel,
            )
            if campaign_id is None:
                stmt = stmt.on_conflict_do_nothing(
                    index_elements=["phone_e164"], index_where=dnc_entries.c.campaign_id.is_(None)
                )
            else:
                stmt = stmt.on_conflict_do_nothing(
                    index_elements=["phone_e164", "campaign_id"],
                    index_where=dnc_entries.c.campaign_id.is_not(None),
                )
            # RETURNING, not rowcount: a skipped conflict's rowcount is not reliable everywhere
            inserted = (await conn.execute(stmt.returning(dnc_entries.c.id))).first()
            if campaign_id is None:
                await conn.execute(
                    contacts.update().where(contacts.c.phone_e164 == phone_e164).values(dnc=True)
                )
            return inserted is not None

        return await self.db.transaction(work)

    async def contains(self, phone_e164: str, at: datetime | None = None) -> bool:
        """Whether the number is on the global list."""
        return await self.find(phone_e164, None, at) is not None

    async def find(
        self, phone_e164: str, campaign_id: uuid.UUID | None, at: datetime | None = None
    ) -> DncEntryRow | None:
        """The unexpired global entry for the number, else its entry for `campaign_id`."""
        check_e164(phone_e164)
        when = at or utcnow()
        scope: ColumnElement[bool] = dnc_entries.c.campaign_id.is_(None)
        if campaign_id is not None:
            scope = or_(scope, dnc_entries.c.campaign_id == campaign_id)

        async def work(conn: AsyncConnection) -> DncEntryRow | None:
            rows = await conn.execute(
                select(dnc_entries).where(
                    dnc_entries.c.phone_e164 == phone_e164,
                    scope,
                    or_(dnc_entries.c.expires_at.is_(None), dnc_entries.c.expires_at > when),
                )
            )
            found = [to_dataclass(DncEntryRow, r) for r in rows]
            # the global entry first: it is the one that matters for every campaign
            found.sort(key=lambda e: e.campaign_id is not None)
            return found[0] if found else None

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
