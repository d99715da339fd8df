"""The CalDAV scheduler against a real Radicale server: free/busy across a DST change, the
booking as an event, two concurrent bookings of one slot (one wins), reschedule, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from reautod.dialogue.scheduling import BookingRequest, BookingStatus, Slot, SlotTakenError
from reautod.errors import NotFoundError, UnavailableError, ValidationError
from reautod.integrations.caldav_scheduler import CalDAVRefusedError, CalDAVScheduler, _transient
from reautod.integrations.settings import CalDAVSettings
from reautod.observability.metrics import Metrics
from reautod.resilience.breaker import BreakerOpenError
from tests.integrations.radicale_server import Radicale, get_events, put_event

NOW = datetime(2026, 10, 28, 14, 30, tzinfo=UTC)  # Wed 10:30 EDT; New York leaves DST on Nov 1
REQUEST = BookingRequest(campaign_id="c-1", contact_id="p-1", lead_id="l-1", call_id="call-1",
                         name="Pat Doe", phone_e164="+15550001111", email="pat@example.com",
                         timezone="Europe/London", notes="wants solar")


def settings(server: Radicale, **kw: object) -> CalDAVSettings:
    return CalDAVSettings.model_validate({
        "url": server.url, "username": server.user, "password_credential": "x",
        "calendar": server.calendar, "timezone": "America/New_York", "day_start": time(9),
        "day_end": time(11), "slot_minutes": 60, "buffer_minutes": 0, "min_notice_minutes": 60,
        "meeting_link_template": "https://meet.example.com/{booking}", **kw})


@pytest.fixture
def server(caldav_server: Radicale) -> Radicale:
    return caldav_server


@pytest.fixture
async def scheduler(server: Radicale) -> AsyncIterator[CalDAVScheduler]:
    opened = await open_scheduler(server)
    try:
        yield opened
    finally:
        await opened.close()


async def open_scheduler(server: Radicale, metrics: Metrics | None = None) -> CalDAVScheduler:
    scheduler = CalDAVScheduler(settings(server), server.password, business_name="Acme Solar",
                                clock=lambda: NOW, metrics=metrics)
    await scheduler.open()
    return scheduler


def utc(day: int, hour: int, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


async def test_free_slots_follow_working_hours_across_dst_and_skip_busy_times(
    server: Radicale, scheduler: CalDAVScheduler,
) -> None:
    # The rep's own events: a meeting at 09:00 EDT on Thu 29 Oct (13:00Z), an all-day event on
    # Fri 30 Oct, a weekly recurring event Mondays 10:00 EST, and a cancelled one (not busy).
    put_event(server, "meeting.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rep//EN\r\n"
              "BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20261001T000000Z\r\n"
              "DTSTART;TZID=America/New_York:20261029T090000\r\n"
              "DTEND;TZID=America/New_York:20261029T093000\r\nSUMMARY:dentist\r\nEND:VEVENT\r\n"
              "END:VCALENDAR\r\n")
    put_event(server, "allday.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rep//EN\r\n"
              "BEGIN:VEVENT\r\nUID:a1\r\nDTSTAMP:20261001T000000Z\r\nDTSTART;VALUE=DATE:20261030\r\n"
              "DTEND;VALUE=DATE:20261031\r\nSUMMARY:off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    put_event(server, "weekly.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rep//EN\r\n"
              "BEGIN:VEVENT\r\nUID:w1\r\nDTSTAMP:20261001T000000Z\r\n"
              "DTSTART;TZID=America/New_York:20261019T100000\r\n"
              "DTEND;TZID=America/New_York:20261019T110000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\n"
              "SUMMARY:team\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    put_event(server, "gone.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rep//EN\r\n"
              "BEGIN:VEVENT\r\nUID:g1\r\nDTSTAMP:20261001T000000Z\r\nDTSTART:20261102T140000Z\r\n"
              "DTEND:20261102T150000Z\r\nSTATUS:CANCELLED\r\nSUMMARY:x\r\nEND:VEVENT\r\n"
              "END:VCALENDAR\r\n")
    slots = await scheduler.free_slots(NOW, utc(4, 0, month=11), limit=20)
    starts = [s.start for s in slots]
    # Thu 29: 09:00 EDT busy, 10:00 EDT free; Fri 30: all day off; Mon 2 Nov (EST now): 09:00
    # free (14:00Z, the cancelled event does not block), 10:00 the weekly meeting; Tue 3: both.
    assert starts == [utc(29, 14), utc(2, 14, 11), utc(3, 14, 11), utc(3, 15, 11)]
    assert slots[1].local("America/New_York").hour == 9  # same wall clock across the change
    assert await scheduler.free_slots(NOW, utc(4, 0, 11), limit=2) == slots[:2]
    # Too soon (min notice) and nothing in a window that has ended.
    assert await scheduler.free_slots(NOW - timedelta(days=2), NOW) == []


async def test_a_booking_is_a_pending_event_and_takes_the_slot(
    server: Radicale, scheduler: CalDAVScheduler,
) -> None:
    [slot] = await scheduler.free_slots(utc(2, 14, 11), utc(2, 15, 11))
    booking = await scheduler.book(slot, REQUEST)
    assert booking.status is BookingStatus.PENDING
    assert booking.meeting_link == f"https://meet.example.com/{booking.ref}"
    [(name, ics)] = get_events(server).items()
    assert name == "reautod-20261102T140000Z.ics"
    event = next(iter(Calendar.from_ical(ics).walk("VEVENT")))
    assert str(event["uid"]) == booking.ref and str(event["status"]) == "TENTATIVE"
    assert event.decoded("dtstart") == slot.start
    assert "Lead's time: Monday 02 November 2026, 14:00 (Europe/London)" in str(event["description"])
    assert await scheduler.free_slots(utc(2, 14, 11), utc(2, 15, 11)) == []
    with pytest.raises(SlotTakenError):
        await scheduler.book(slot, REQUEST)
    with pytest.raises(ValidationError):  # not a slot of the working hours
        await scheduler.book(Slot(utc(2, 14, 11) + timedelta(minutes=7), utc(2, 16, 11)), REQUEST)
    confirmed = await scheduler.confirm(booking.ref)
    assert confirmed.status is BookingStatus.CONFIRMED


async def test_two_calls_never_take_one_slot(server: Radicale, scheduler: CalDAVScheduler) -> None:
    metrics = Metrics()
    # Two daemons (their own clients and locks) and two calls in one daemon, all at once.
    other = await open_scheduler(server, metrics)
    try:
        slot = Slot(utc(3, 14, 11), utc(3, 15, 11))
        results = await asyncio.gather(
            scheduler.book(slot, REQUEST), other.book(slot, REQUEST), other.book(slot, REQUEST),
            return_exceptions=True)
    finally:
        await other.close()
    booked = [r for r in results if not isinstance(r, BaseException)]
    assert len(booked) == 1, results
    assert all(isinstance(r, SlotTakenError) for r in results if r not in booked)
    assert list(get_events(server)) == ["reautod-20261103T140000Z.ics"]


async def test_reschedule_and_cancel(server: Radicale, scheduler: CalDAVScheduler) -> None:
    first, second, third = Slot(utc(2, 14, 11), utc(2, 15, 11)), Slot(utc(3, 14, 11), utc(3, 15, 11)), \
        Slot(utc(3, 15, 11), utc(3, 16, 11))
    booking = await scheduler.book(first, REQUEST)
    blocker = await scheduler.book(third, REQUEST)
    moved = await scheduler.reschedule(booking.ref, second)
    assert (moved.ref, moved.slot, moved.status) == (booking.ref, second, BookingStatus.PENDING)
    assert sorted(get_events(server)) == ["reautod-20261103T140000Z.ics", "reautod-20261103T150000Z.ics"]
    assert first in await scheduler.free_slots(utc(2, 0, 11), utc(3, 0, 11))
    with pytest.raises(SlotTakenError):
        await scheduler.reschedule(booking.ref, third)
    assert (await scheduler.event(booking.ref))[1].slot == second  # kept where it was

    await scheduler.cancel(blocker.ref)
    await scheduler.cancel(blocker.ref)  # idempotent
    assert third in await scheduler.free_slots(utc(3, 0, 11), utc(4, 0, 11))
    _, cancelled = await scheduler.event(blocker.ref)
    assert cancelled.status.value == "CANCELLED" and cancelled.sequence == 1
    with pytest.raises(ValidationError):
        await scheduler.reschedule(blocker.ref, first)
    with pytest.raises(NotFoundError):
        await scheduler.cancel("no-such-booking")
    with pytest.raises(NotFoundError):
        await scheduler.reschedule("no-such-booking", first)


async def test_a_missing_calendar_is_reported(server: Radicale, tmp_path: Path) -> None:
    from reautod.errors import UnavailableError

    missing = CalDAVScheduler(settings(server, calendar="holidays"), server.password,
                              business_name="Acme")
    with pytest.raises(UnavailableError, match="no calendar"):
        await missing.open()
    await missing.close()


def test_caldav_failures_are_told_apart_for_the_circuit() -> None:
    assert _transient(CalDAVRefusedError("CalDAV refused the event: HTTP 503", 503))
    assert not _transient(CalDAVRefusedError("CalDAV refused the event: HTTP 403", 403))
    assert _transient(UnavailableError("CalDAV search failed: connection refused"))
    assert not _transient(BreakerOpenError("caldav circuit is open"))
