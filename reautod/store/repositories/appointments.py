"""Appointments booked on calls, with the capacity of a slot enforced inside the transaction.

`book(..., capacity=n)` counts the campaign's active appointments overlapping the new one and
refuses the booking (SlotFullError) when n are there already. Two calls booking at once cannot
both pass the count: on Postgres the transaction first takes an advisory lock on the campaign
(`pg_advisory_xact_lock`, released at commit), on SQLite every write transaction is BEGIN
IMMEDIATE (reautod.store.database), so bookings of one campaign are serialized either way.
Booking is idempotent on `appointment_id`: a retried tool call books once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, StoreError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import AppointmentStatus
from reautod.store.repositories._base import table, to_dataclass
from reautod.store.types import utcnow

appointments = table(m.Appointment)

# Appointments that hold their slot.
ACTIVE = (AppointmentStatus.BOOKED.value, AppointmentStatus.CONFIRMED.value)


class SlotFullError(StoreError):
    """The slot already holds as many appointments as it may."""

    code = "slot_full"


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


def _check_span(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValidationError("appointment times must be timezone-aware")
    if ends_at <= starts_at:
        raise ValidationError("an appointment must end after it starts")


def _lock_key(campaign_id: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key for the campaign's bookings."""
    return int.from_bytes(campaign_id.bytes[:8], "big", signed=True)


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
        capacity: int | None = None,
    ) -> AppointmentRow:
        """Book (idempotent on `appointment_id`). With `capacity` (and a campaign), refuse with
        SlotFullError when that many active appointments of the campaign overlap already."""
        _check_span(starts_at, ends_at)
        if capacity is not None and (capacity < 1 or campaign_id is None):
            raise ValidationError("a capacity is at least 1 and needs a campaign")
        appointment_id = appointment_id or uuid.uuid4()

        async def work(conn: AsyncConnection) -> AppointmentRow:
            existing = await self._get(conn, appointment_id)
            if existing is not None:
                return existing
            if capacity is not None and campaign_id is not None:
                await self._lock(conn, campaign_id)
                taken = await self._overlapping(conn, campaign_id, starts_at, ends_at, None)
                if taken >= capacity:
                    raise SlotFullError(f"the slot holds {taken} of {capacity} appointments")
            await conn.execute(appointments.insert().values(
                id=appointment_id, contact_id=contact_id, campaign_id=campaign_id, call_id=call_id,
                starts_at=starts_at, ends_at=ends_at, timezone=timezone,
                status=AppointmentStatus.BOOKED.value, calendar_ref=calendar_ref, notes=notes,
                created_at=utcnow(),
            ))
            return await self._one(conn, appointment_id)

        return await self.db.transaction(work)

    async def move(self, appointment_id: uuid.UUID, starts_at: datetime, ends_at: datetime, *,
                   capacity: int | None = None) -> AppointmentRow:
        """Move an active appointment (capacity checked as in `book`, not counting itself); it is
        booked (pending) again until its confirmations go out."""
        _check_span(starts_at, ends_at)

        async def work(conn: AsyncConnection) -> AppointmentRow:
            row = await self._get(conn, appointment_id)
            if row is None or row.status not in ACTIVE:
                raise NotFoundError(f"no active appointment {appointment_id}")
            if capacity is not None and row.campaign_id is not None:
                await self._lock(conn, row.campaign_id)
                taken = await self._overlapping(conn, row.campaign_id, starts_at, ends_at,
                                                appointment_id)
                if taken >= capacity:
                    raise SlotFullError(f"the slot holds {taken} of {capacity} appointments")
            # a moved appointment waits for its confirmations again (booked = pending)
            await conn.execute(update(appointments).where(appointments.c.id == appointment_id)
                               .values(starts_at=starts_at, ends_at=ends_at,
                                       status=AppointmentStatus.BOOKED.value))
            return await self._one(conn, appointment_id)

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
            row = await self._get(conn, appointment_id)
            if row is None:
                raise NotFoundError(f"no appointment {appointment_id}")
            return row

        return await self.db.read(work)

    async def of_call(self, call_id: uuid.UUID) -> AppointmentRow | None:
        """The appointment booked on a call that still holds its slot (the latest), if any."""

        async def work(conn: AsyncConnection) -> AppointmentRow | None:
            row = (await conn.execute(
                select(appointments)
                .where(appointments.c.call_id == call_id, appointments.c.status.in_(ACTIVE))
                .order_by(appointments.c.created_at.desc()).limit(1))).first()
            return None if row is None else to_dataclass(AppointmentRow, row)

        return await self.db.read(work)

    async def between(self, start: datetime, end: datetime, *,
                      campaign_id: uuid.UUID | None = None,
                      active_only: bool = False) -> list[AppointmentRow]:
        """Appointments starting in [start, end), earliest first."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValidationError("times must be timezone-aware")

        async def work(conn: AsyncConnection) -> list[AppointmentRow]:
            query = (select(appointments)
                     .where(appointments.c.starts_at >= start, appointments.c.starts_at < end)
                     .order_by(appointments.c.starts_at))
            if campaign_id is not None:
                query = query.where(appointments.c.campaign_id == campaign_id)
            if active_only:
                query = query.where(appointments.c.status.in_(ACTIVE))
            return [to_dataclass(AppointmentRow, r) for r in await conn.execute(query)]

        return await self.db.read(work)

    @staticmethod
    async def _get(conn: AsyncConnection, appointment_id: uuid.UUID) -> AppointmentRow | None:
        row = (await conn.execute(
            select(appointments).where(appointments.c.id == appointment_id))).first()
        return None if row is None else to_dataclass(AppointmentRow, row)

    @staticmethod
    async def _one(conn: AsyncConnection, appointment_id: uuid.UUID) -> AppointmentRow:
        row = (await conn.execute(
            select(appointments).where(appointments.c.id == appointment_id))).one()
        return to_dataclass(AppointmentRow, row)

    @staticmethod
    async def _lock(conn: AsyncConnection, campaign_id: uuid.UUID) -> None:
        if conn.dialect.name == "postgresql":
            await conn.execute(select(func.pg_advisory_xact_lock(_lock_key(campaign_id))))

    @staticmethod
    async def _overlapping(conn: AsyncConnection, campaign_id: uuid.UUID, starts_at: datetime,
                           ends_at: datetime, excluding: uuid.UUID | None) -> int:
        query = select(func.count()).select_from(appointments).where(
            appointments.c.campaign_id == campaign_id,
            appointments.c.status.in_(ACTIVE),
            appointments.c.starts_at < ends_at,
            appointments.c.ends_at > starts_at,
        )
        if excluding is not None:
            query = query.where(appointments.c.id != excluding)
        return int((await conn.execute(query)).scalar_one())
