"""Leads: a contact in a campaign, and the dialer's queue of leads due for a call."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import DUE_LEAD_STATUSES, LeadStatus
from reautod.store.repositories._base import check_e164, check_limit, table, to_dataclass
from reautod.store.repositories.contacts import ContactInput
from reautod.store.sql import upsert
from reautod.store.types import utcnow

leads = table(m.Lead)
contacts = table(m.Contact)


@dataclass(frozen=True)
class LeadRow:
    id: uuid.UUID
    campaign_id: uuid.UUID
    contact_id: uuid.UUID
    status: str
    priority: int
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    score: int | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


def due_leads_query(campaign_id: uuid.UUID, now: datetime, limit: int) -> Select[tuple[object, ...]]:
    """A campaign's due leads, oldest due first (served by
    ix_leads_campaign_id_status_next_attempt_at)."""
    return (
        select(leads)
        .where(
            leads.c.campaign_id == campaign_id,
            leads.c.status.in_([s.value for s in DUE_LEAD_STATUSES]),
            leads.c.next_attempt_at <= now,
        )
        .order_by(leads.c.next_attempt_at)
        .limit(limit)
    )


class LeadRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        campaign_id: uuid.UUID,
        contact_id: uuid.UUID,
        *,
        next_attempt_at: datetime | None = None,
        priority: int = 0,
    ) -> LeadRow:
        """Put a contact in a campaign (idempotent: an existing lead is returned unchanged)."""
        if next_attempt_at is not None and next_attempt_at.tzinfo is None:
            raise ValidationError("next_attempt_at must be timezone-aware")

        async def work(conn: AsyncConnection) -> LeadRow:
            now = utcnow()
            stmt = upsert(conn, leads).values(
                id=uuid.uuid4(),
                campaign_id=campaign_id,
                contact_id=contact_id,
                status=LeadStatus.NEW.value,
                priority=priority,
                attempts=0,
                next_attempt_at=next_attempt_at or now,
                created_at=now,
                updated_at=now,
            )
            await conn.execute(
                stmt.on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
            )
            row = (
                await conn.execute(
                    select(leads).where(
                        leads.c.campaign_id == campaign_id, leads.c.contact_id == contact_id
                    )
                )
            ).one()
            return to_dataclass(LeadRow, row)

        return await self.db.transaction(work)

    async def due(self, campaign_id: uuid.UUID, now: datetime, limit: int = 100) -> list[LeadRow]:
        check_limit(limit)

        async def work(conn: AsyncConnection) -> list[LeadRow]:
            rows = await conn.execute(due_leads_query(campaign_id, now, limit))
            return [to_dataclass(LeadRow, r) for r in rows]

        return await self.db.read(work)

    async def set_status(
        self, lead_id: uuid.UUID, status: LeadStatus, *, next_attempt_at: datetime | None = None
    ) -> None:
        if next_attempt_at is not None and next_attempt_at.tzinfo is None:
            raise ValidationError("next_attempt_at must be timezone-aware")

        async def work(conn: AsyncConnection) -> None:
            values: dict[str, object] = {"status": status.value, "updated_at": utcnow()}
            if next_attempt_at is not None:
                values["next_attempt_at"] = next_attempt_at
            result = await conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))
            if result.rowcount == 0:
                raise NotFoundError(f"no lead {lead_id}")

        await self.db.transaction(work)

    async def get(self, lead_id: uuid.UUID) -> LeadRow:
        async def work(conn: AsyncConnection) -> LeadRow:
            row = (await conn.execute(select(leads).where(leads.c.id == lead_id))).first()
            if row is None:
                raise NotFoundError(f"no lead {lead_id}")
            return to_dataclass(LeadRow, row)

        return await self.db.read(work)

    async def import_contacts(
        self, campaign_id: uuid.UUID, people: Sequence[ContactInput], *, next_attempt_at: datetime
    ) -> int:
        """Upsert the contacts and put each in the campaign, all in one transaction (nothing is
        half-imported); returns how many leads were new."""
        if next_attempt_at.tzinfo is None:
            raise ValidationError("next_attempt_at must be timezone-aware")
        for person in people:
            check_e164(person.phone_e164)

        async def work(conn: AsyncConnection) -> int:
            now = utcnow()
            added = 0
            for person in people:
                given = {k: v for k, v in {
                    "name": person.name, "email": person.email, "timezone": person.timezone,
                    "consent_status": person.consent_status.value if person.consent_status
                    else None, "consent_at": person.consent_at,
                    "consent_source": person.consent_source, "source": person.source,
                    "custom": person.custom,
                }.items() if v is not None}
                stmt = upsert(conn, contacts).values(
                    id=uuid.uuid4(), phone_e164=person.phone_e164, created_at=now, updated_at=now,
                    **given,
                )
                set_ = {k: stmt.excluded[k] for k in given}
                set_["updated_at"] = stmt.excluded.updated_at
                await conn.execute(
                    stmt.on_conflict_do_update(index_elements=["phone_e164"], set_=set_))
                contact_id = (await conn.execute(
                    select(contacts.c.id).where(contacts.c.phone_e164 == person.phone_e164)
                )).scalar_one()
                lead = upsert(conn, leads).values(
                    id=uuid.uuid4(), campaign_id=campaign_id, contact_id=contact_id,
                    status=LeadStatus.NEW.value, priority=0, attempts=0,
                    next_attempt_at=next_attempt_at, created_at=now, updated_at=now,
                )
                inserted = (await conn.execute(
                    lead.on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
                    .returning(leads.c.id))).first()
                added += inserted is not None
            return added

        return await self.db.transaction(work)

    async def phones(self, campaign_id: uuid.UUID) -> set[str]:
        """The phone numbers already in a campaign (for duplicate checks on import)."""

        async def work(conn: AsyncConnection) -> set[str]:
            rows = await conn.execute(
                select(contacts.c.phone_e164)
                .join(leads, leads.c.contact_id == contacts.c.id)
                .where(leads.c.campaign_id == campaign_id)
            )
            return {phone for (phone,) in rows}

        return await self.db.read(work)

    async def status_counts(self, campaign_id: uuid.UUID) -> dict[str, int]:
        async def work(conn: AsyncConnection) -> dict[str, int]:
            rows = await conn.execute(
                select(leads.c.status, func.count())
                .where(leads.c.campaign_id == campaign_id)
                .group_by(leads.c.status)
            )
            return {status: int(n) for status, n in rows}

        return await self.db.read(work)

    async def by_phone(self, phone_e164: str) -> list[LeadRow]:
        """The leads of the contact with this number, most recently touched first."""
        check_e164(phone_e164)

        async def work(conn: AsyncConnection) -> list[LeadRow]:
            rows = await conn.execute(
                select(leads)
                .join(contacts, contacts.c.id == leads.c.contact_id)
                .where(contacts.c.phone_e164 == phone_e164)
                .order_by(leads.c.updated_at.desc())
            )
            return [to_dataclass(LeadRow, r) for r in rows]

        return await self.db.read(work)
