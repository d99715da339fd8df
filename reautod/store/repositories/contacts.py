"""Contacts (the people), keyed by E.164 phone number; erasing one removes everything about them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import ConsentStatus
from reautod.store.repositories._base import check_e164, table, to_dataclass
from reautod.store.sql import upsert
from reautod.store.types import utcnow

contacts = table(m.Contact)


@dataclass(frozen=True)
class ContactRow:
    id: uuid.UUID
    phone_e164: str
    name: str | None
    email: str | None
    timezone: str | None
    consent_status: str
    consent_at: datetime | None
    consent_source: str | None
    source: str | None
    dnc: bool
    custom: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ContactInput:
    """What an import or the API knows about a person; None leaves a stored value as it is."""

    phone_e164: str
    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    consent_status: ConsentStatus | None = None
    consent_at: datetime | None = None
    consent_source: str | None = None
    source: str | None = None
    custom: dict[str, Any] | None = None


class ContactRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert(self, contact: ContactInput) -> ContactRow:
        """Insert, or update the given fields of the contact with that phone number."""
        check_e164(contact.phone_e164)
        if contact.consent_at is not None and contact.consent_at.tzinfo is None:
            raise ValidationError("consent_at must be timezone-aware")
        fields = {
            "name": contact.name,
            "email": contact.email,
            "timezone": contact.timezone,
            "consent_status": contact.consent_status.value if contact.consent_status else None,
            "consent_at": contact.consent_at,
            "consent_source": contact.consent_source,
            "source": contact.source,
            "custom": contact.custom,
        }
        given = {k: v for k, v in fields.items() if v is not None}

        async def work(conn: AsyncConnection) -> ContactRow:
            now = utcnow()
            stmt = upsert(conn, contacts).values(
                id=uuid.uuid4(), phone_e164=contact.phone_e164, created_at=now, updated_at=now,
                **given,
            )
            set_ = {k: stmt.excluded[k] for k in given} | {"updated_at": stmt.excluded.updated_at}
            await conn.execute(stmt.on_conflict_do_update(index_elements=["phone_e164"], set_=set_))
            row = (
                await conn.execute(select(contacts).where(contacts.c.phone_e164 == contact.phone_e164))
            ).one()
            return to_dataclass(ContactRow, row)

        return await self.db.transaction(work)

    async def get(self, contact_id: uuid.UUID) -> ContactRow:
        async def work(conn: AsyncConnection) -> ContactRow:
            row = (await conn.execute(select(contacts).where(contacts.c.id == contact_id))).first()
            if row is None:
                raise NotFoundError(f"no contact {contact_id}")
            return to_dataclass(ContactRow, row)

        return await self.db.read(work)

    async def by_phone(self, phone_e164: str) -> ContactRow | None:
        check_e164(phone_e164)

        async def work(conn: AsyncConnection) -> ContactRow | None:
            row = (
                await conn.execute(select(contacts).where(contacts.c.phone_e164 == phone_e164))
            ).first()
            return None if row is None else to_dataclass(ContactRow, row)

        return await self.db.read(work)

    async def erase(self, contact_id: uuid.UUID) -> list[str]:
        """Delete the contact and, by cascade, its leads, calls, turns, scores, recordings rows,
        appointments and outbox messages. Returns the recording file paths, which the caller
        must delete (files are not in the database)."""
        recordings = table(m.Recording)
        calls = table(m.Call)

        async def work(conn: AsyncConnection) -> list[str]:
            paths = await conn.execute(
                select(recordings.c.path)
                .join(calls, calls.c.id == recordings.c.call_id)
                .where(calls.c.contact_id == contact_id)
            )
            found = [p for (p,) in paths]
            result = await conn.execute(delete(contacts).where(contacts.c.id == contact_id))
            if result.rowcount == 0:
                raise NotFoundError(f"no contact {contact_id}")
            return found

        return await self.db.transaction(work)
