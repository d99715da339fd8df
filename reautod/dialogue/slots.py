"""The campaign's own appointment slots: a `Scheduler` over the appointments table.

Slots are laid on each day's business hours in the agent's timezone (the playbook's `booking`
section): from opening time, `slot_minutes` long, `buffer_minutes` apart, never past closing.
A slot is free while fewer than `max_per_slot` active appointments of the campaign overlap it.
Only slots at least `min_notice_minutes` ahead and at most `horizon_days` away are offered or
booked. Booking re-checks the count inside the transaction (AppointmentRepository), so two calls
can never put more than `max_per_slot` appointments in one slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from reautod.dialogue.playbook import BookingSettings
from reautod.dialogue.scheduling import Booking, BookingRequest, BookingStatus, Slot, SlotTakenError
from reautod.errors import ValidationError
from reautod.store.enums import AppointmentStatus
from reautod.store.repositories.appointments import (
    AppointmentRepository,
    AppointmentRow,
    SlotFullError,
)

Clock = Callable[[], datetime]
# A booking's id is derived from the call and the slot, so a retried tool call books once.
_BOOKING_NAMESPACE = uuid.UUID("6f1c1f7e-4b0e-4d7e-9a51-2f1de4c1b7a0")


def _now() -> datetime:
    return datetime.now(UTC)


class CampaignSlots:
    """`Scheduler` of one campaign's slots (see the module docstring)."""

    def __init__(self, settings: BookingSettings, appointments: AppointmentRepository,
                 campaign_id: uuid.UUID, *, clock: Clock = _now) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.hours = settings.day_hours()
        self.length = timedelta(minutes=settings.slot_minutes)
        self.step = timedelta(minutes=settings.slot_minutes + settings.buffer_minutes)
        self._appointments = appointments
        self._campaign_id = campaign_id
        self._clock = clock

    def _bounds(self) -> tuple[datetime, datetime]:
        now = self._clock().astimezone(UTC)
        return (now + timedelta(minutes=self.settings.min_notice_minutes),
                now + timedelta(days=self.settings.horizon_days))

    def _day_slots(self, day: date) -> Iterator[Slot]:
        span = self.hours.get(day.weekday())
        if span is None:
            return
        start = datetime.combine(day, span[0], self.zone)
        close = datetime.combine(day, span[1], self.zone)
        while start + self.length <= close:
            yield Slot(start, start + self.length)
            start += self.step

    def candidates(self, start: datetime, end: datetime) -> Iterator[Slot]:
        """Every slot of the business hours starting in [start, end) and bookable by notice."""
        earliest, latest = self._bounds()
        lo, hi = max(start.astimezone(UTC), earliest), min(end.astimezone(UTC), latest)
        day = lo.astimezone(self.zone).date()
        while day <= hi.astimezone(self.zone).date():
            for slot in self._day_slots(day):
                if lo <= slot.start < hi:
                    yield slot
            day += timedelta(days=1)

    def refusal(self, slot: Slot) -> str | None:
        """Why `slot` cannot be booked by the rules (not its fill), or None."""
        earliest, latest = self._bounds()
        if slot.start < earliest:
            return "the slot is too soon (or past)"
        if slot.start > latest:
            return f"the slot is more than {self.settings.horizon_days} days ahead"
        if slot not in set(self._day_slots(slot.start.astimezone(self.zone).date())):
            return "the slot is not one of the business-hours slots"
        return None

    async def free_slots(self, start: datetime, end: datetime, *, limit: int = 10) -> list[Slot]:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValidationError("free_slots needs timezone-aware bounds")
        wanted = list(self.candidates(start, end))
        if not wanted:
            return []
        booked = await self._appointments.between(
            wanted[0].start - timedelta(days=1), wanted[-1].end, campaign_id=self._campaign_id,
            active_only=True)
        free: list[Slot] = []
        for slot in wanted:
            taken = sum(1 for a in booked if a.starts_at < slot.end and a.ends_at > slot.start)
            if taken < self.settings.max_per_slot:
                free.append(slot)
                if len(free) == limit:
                    break
        return free

    async def book(self, slot: Slot, request: BookingRequest) -> Booking:
        reason = self.refusal(slot)
        if reason is not None:
            raise SlotTakenError(reason)
        key = f"{request.call_id or request.contact_id}/{slot.start.isoformat()}"
        try:
            row = await self._appointments.book(
                uuid.UUID(request.contact_id), slot.start, slot.end,
                appointment_id=uuid.uuid5(_BOOKING_NAMESPACE, key),
                campaign_id=self._campaign_id,
                call_id=uuid.UUID(request.call_id) if request.call_id else None,
                timezone=request.timezone, notes=request.notes or None,
                capacity=self.settings.max_per_slot,
            )
        except SlotFullError as err:
            raise SlotTakenError("that slot was just taken") from err
        return _booking(row)

    async def reschedule(self, ref: str, slot: Slot) -> Booking:
        reason = self.refusal(slot)
        if reason is not None:
            raise SlotTakenError(reason)
        try:
            row = await self._appointments.move(_ref(ref), slot.start, slot.end,
                                                capacity=self.settings.max_per_slot)
        except SlotFullError as err:
            raise SlotTakenError("that slot was just taken") from err
        return _booking(row)

    async def cancel(self, ref: str) -> None:
        await self._appointments.set_status(_ref(ref), AppointmentStatus.CANCELLED)


def _ref(ref: str) -> uuid.UUID:
    try:
        return uuid.UUID(ref)
    except ValueError as err:
        raise ValidationError(f"{ref!r} is not an appointment reference") from err


def _booking(row: AppointmentRow) -> Booking:
    status = {AppointmentStatus.BOOKED.value: BookingStatus.PENDING,
              AppointmentStatus.CONFIRMED.value: BookingStatus.CONFIRMED}.get(
                  row.status, BookingStatus.CANCELLED)
    return Booking(str(row.id), Slot(row.starts_at, row.ends_at), status)
