"""Appointments booked on calls."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import AppointmentStatus
from reautod.store.repositories._base import table, to_dataclass
from reautod.store.sql import upsert
from reautod.store.types import utcnow

appointments = table(m.Appointment)


@dataclass(frozen=True)
class AppointmentRow:
    id: uuid.UUID
    contact_id: uuid.UUID
    campaign_id: uuid.UUID | None
    call_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime
    timezone: str | None
    status: str
    calendar_ref: str | None
    notes: str | None
    created_at: datetime


class AppointmentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def book(
        self,
        contact_id: uuid.UUID,
        starts_at: datetime,
        ends_at: datetime,
        *,
        appointment_id: uuid.UUID | None = None,
        campaign_id: uuid.UUID | None = None,
        call_id: uuid.UUID | None = None,
        timezone: str | None = None,
        calendar_ref: str | None = None,
        notes: str | None = None,
    ) -> AppointmentRow:
        """Book (idempotent on `appointment_id`, so a retried tool call books once)."""
        if starts_at.tzinfo is None or ends_at.tzinfo is None:
            raise ValidationError("appointment times must be timezone-aware")
        if ends_at <= starts_at:
            raise ValidationError("an appointment must end after it starts")
        appointment_id = appointment_id or uuid.uuid4()

        async def work(conn: AsyncConnection) -> AppointmentRow:
            stmt = upsert(conn, appointments).values(
                id=appointment_id, contact_id=contact_id, campaign_id=campaign_id, call_id=call_id,
                starts_at=starts_at, ends_at=ends_at, timezone=timezone,
                status=AppointmentStatus.BOOKED.value, calendar_ref=calendar_ref, notes=notes,
                created_at=utcnow(),
            )
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
            row = (
                await conn.execute(select(appointments).where(appointments.c.id == appointment_id))
            ).one()
            return to_dataclass(AppointmentRow, row)

        return await self.db.transaction(work)

    async def set_status(self, appointment_id: uuid.UUID, status: AppointmentStatus) -> None:
        async def work(conn: AsyncConnection) -> None:
            result = await conn.execute(
                update(appointments)
                .where(appointments.c.id == appointment_id)
                .values(status=status.value)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no appointment {appointment_id}")

        await self.db.transaction(work)

    async def get(self, appointment_id: uuid.UUID) -> AppointmentRow:
        async def work(conn: AsyncConnection) -> AppointmentRow:
            row = (
                await conn.execute(select(appointments).where(appointments.c.id == appointment_id))
            ).first()
            if row is None:
                raise NotFoundError(f"no appointment {appointment_id}")
            return to_dataclass(AppointmentRow, row)

        return await self.db.read(work)

    async def move(self, appointment_id: uuid.UUID, starts_at: datetime, ends_at: datetime) -> None:
        """A rescheduled appointment: new times, and booked (pending) again until confirmed."""
        if starts_at.tzinfo is None or ends_at.tzinfo is None or ends_at <= starts_at:
            raise ValidationError("an appointment needs aware times and must end after it starts")

        async def work(conn: AsyncConnection) -> None:
            result = await conn.execute(
                update(appointments)
                .where(appointments.c.id == appointment_id)
                .values(starts_at=starts_at, ends_at=ends_at,
                        status=AppointmentStatus.BOOKED.value)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no appointment {appointment_id}")

        await self.db.transaction(work)

    async def between(self, start: datetime, end: datetime) -> list[AppointmentRow]:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValidationError("times must be timezone-aware")

        async def work(conn: AsyncConnection) -> list[AppointmentRow]:
            rows = await conn.execute(
                select(appointments)
                .where(appointments.c.starts_at >= start, appointments.c.starts_at < end)
                .order_by(appointments.c.starts_at)
            )
            return [to_dataclass(AppointmentRow, r) for r in rows]

        return await self.db.read(work)
