"""The campaign's own slots on the appointments table, on SQLite and Postgres: the grid, notice,
capacity, and two calls booking one slot at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from reautod.dialogue.playbook import BookingSettings
from reautod.dialogue.scheduling import BookingRequest, BookingStatus, Slot, SlotTakenError
from reautod.dialogue.slots import CampaignSlots
from reautod.errors import NotFoundError, ValidationError
from reautod.store.database import Database
from reautod.store.records import CallStarted
from reautod.store.repositories import (
    AppointmentRepository,
    CallRepository,
    CampaignRepository,
    ContactInput,
    ContactRepository,
)
from tests.dialogue.fakes import NOW, clock

# Chicago, Tuesday 2026-12-08 10:00 now; hours 09:00-11:00 (Wed closed), 30 min + 10 buffer.
SETTINGS = BookingSettings(timezone="America/Chicago", hours={"tue": "09:00-11:00", "thu": "09:00-11:00"},
                           slot_minutes=30, buffer_minutes=10, max_per_slot=1,
                           min_notice_minutes=30, horizon_days=3)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


async def setup(db: Database, settings: BookingSettings = SETTINGS) -> tuple[CampaignSlots, list[str]]:
    campaign = await CampaignRepository(db).create(f"c-{uuid.uuid4().hex[:8]}")
    contacts = [await ContactRepository(db).upsert(ContactInput(f"+1312555{n:04d}")) for n in range(3)]
    slots = CampaignSlots(settings, AppointmentRepository(db), campaign.id, clock=clock)
    return slots, [str(c.id) for c in contacts]


def request(contact: str, call: str | None = None) -> BookingRequest:
    return BookingRequest(campaign_id="", contact_id=contact, lead_id=None, call_id=call,
                          name="Pat", phone_e164="+13125550000", email=None,
                          timezone="America/New_York")


async def test_free_slots_follow_hours_notice_and_bookings(db: Database) -> None:
    slots, contacts = await setup(db)
    free = await slots.free_slots(NOW, NOW + timedelta(days=7), limit=10)
    # Today's last slot (10:20) is inside the 30 minutes' notice from 10:00; Wednesday is
    # closed; Thursday 09:00, 09:40, 10:20 (10:20 + 30 min ends before 11:00, 11:00 would
    # not). The horizon (3 days) ends before next Tuesday.
    assert [s.start for s in free] == [utc(10, 15), utc(10, 15, 40), utc(10, 16, 20)]
    assert all(s.end - s.start == timedelta(minutes=30) for s in free)
    booking = await slots.book(free[1], request(contacts[0]))
    assert booking.status is BookingStatus.PENDING and booking.slot == free[1]
    again = await slots.free_slots(NOW, NOW + timedelta(days=7))
    assert free[1] not in again and len(again) == 2
    for bad in (Slot(utc(8, 15), utc(8, 15, 30)),  # too soon
                Slot(utc(9, 15), utc(9, 15, 30)),  # Wednesday: closed
                Slot(utc(10, 15, 5), utc(10, 15, 35))):  # off the grid
        with pytest.raises(SlotTakenError):
            await slots.book(bad, request(contacts[1]))
    with pytest.raises(ValidationError):
        await slots.free_slots(NOW.replace(tzinfo=None), NOW)


async def test_two_calls_cannot_take_one_slot(db: Database) -> None:
    slots, contacts = await setup(db)
    [slot] = await slots.free_slots(utc(10, 15), utc(10, 15, 1))
    results = await asyncio.gather(*(slots.book(slot, request(c)) for c in contacts[:2]),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Booking", "SlotTakenError"]
    [row] = await AppointmentRepository(db).between(utc(10, 0), utc(11, 0))
    assert row.starts_at == slot.start


async def test_capacity_and_reschedule(db: Database) -> None:
    settings = SETTINGS.model_copy(update={"max_per_slot": 2})
    slots, contacts = await setup(db, settings)
    [slot, later] = (await slots.free_slots(utc(10, 15), utc(10, 16)))
    call = str(uuid.uuid4())
    await CallRepository(db).write([CallStarted(uuid.UUID(call), NOW)])
    results = await asyncio.gather(*(slots.book(slot, request(c, call if i == 0 else None))
                                     for i, c in enumerate(contacts)), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Booking", "Booking", "SlotTakenError"]
    # A retried tool call (same call, same slot) books once.
    first = next(r for r in results if not isinstance(r, Exception) and r is results[0])
    assert await slots.book(slot, request(contacts[0], call)) == first
    moved = await slots.reschedule(first.ref, later)  # type: ignore[union-attr]
    assert moved.slot == later
    assert slot in await slots.free_slots(utc(10, 15), utc(10, 16))
    await slots.cancel(first.ref)  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        await slots.reschedule(first.ref, slot)  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        await slots.cancel("not-a-ref")
