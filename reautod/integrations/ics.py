"""iCalendar (RFC 5545) for bookings, with `icalendar`: the event written to the rep's calendar
and attached to the rep's email, and busy times read back from calendar events.

Times are written in UTC (`...Z`), which every client shows in its own zone: nothing depends on
a VTIMEZONE being right. Events read back may use any form: UTC, a TZID, floating (taken in the
rep's zone) or all-day dates (the whole local day).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vText

from reautod.dialogue.scheduling import BookingRequest, BookingStatus, Slot
from reautod.integrations.slots import Busy

PRODID = "-//reautod//booking//EN"
MARKER = "X-REAUTOD-BOOKING"


class EventStatus(StrEnum):
    TENTATIVE = "TENTATIVE"  # booked, confirmations not yet delivered
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


BOOKING_STATUS = {EventStatus.TENTATIVE: BookingStatus.PENDING,
                  EventStatus.CONFIRMED: BookingStatus.CONFIRMED,
                  EventStatus.CANCELLED: BookingStatus.CANCELLED}
EVENT_STATUS = {booking: event for event, booking in BOOKING_STATUS.items()}


@dataclass(frozen=True)
class BookingEvent:
    """What a booking's calendar event says; `sequence` grows with every change (RFC 5545).
    `about` is the fixed part of the description (who, how to reach them, notes); the lead's
    local time and the meeting link are added from the slot, so a move rewrites them."""

    uid: str
    slot: Slot
    status: EventStatus
    summary: str
    about: str
    lead_timezone: str
    meeting_link: str | None
    sequence: int = 0

    @classmethod
    def for_request(cls, uid: str, slot: Slot, request: BookingRequest, business: str,
                    meeting_link: str | None) -> BookingEvent:
        lines = [f"Lead: {request.name}", f"Phone: {request.phone_e164}"]
        if request.email:
            lines.append(f"Email: {request.email}")
        if request.notes:
            lines.append(f"Notes: {request.notes}")
        lines.append(f"Booked by reautod (campaign {request.campaign_id}, call {request.call_id})")
        return cls(uid, slot, EventStatus.TENTATIVE, f"{business}: call with {request.name}",
                   "\n".join(lines), request.timezone, meeting_link)

    @property
    def description(self) -> str:
        local = self.slot.local(self.lead_timezone)
        lines = [self.about, f"Lead's time: {local:%A %d %B %Y, %H:%M} ({self.lead_timezone})"]
        if self.meeting_link:
            lines.append(f"Meeting: {self.meeting_link}")
        return "\n".join(lines)

    def ics(self, *, method: str | None = None) -> bytes:
        cal = Calendar()
        cal.add("prodid", PRODID)
        cal.add("version", "2.0")
        if method:
            cal.add("method", method)
        event = Event()
        event.add("uid", self.uid)
        event.add("dtstamp", datetime.now(UTC))
        event.add("dtstart", self.slot.start)
        event.add("dtend", self.slot.end)
        event.add("summary", self.summary)
        event.add("description", self.description)
        event.add("status", self.status.value)
        event.add("sequence", self.sequence)
        event.add("transp", "TRANSPARENT" if self.status is EventStatus.CANCELLED else "OPAQUE")
        if self.meeting_link:
            event.add("location", self.meeting_link)
            event.add("url", self.meeting_link)
        event.add(MARKER, "1")
        event.add(f"{MARKER}-ABOUT", vText(self.about))  # X- properties are not escaped unless typed
        event.add(f"{MARKER}-LEAD-TZ", self.lead_timezone)
        cal.add_component(event)
        return bytes(cal.to_ical())

    @classmethod
    def parse(cls, data: str | bytes) -> BookingEvent:
        event = next(iter(Calendar.from_ical(data).walk("VEVENT")))
        start, end = event.decoded("dtstart"), event.decoded("dtend")
        link = event.get("url")
        return cls(str(event["uid"]), Slot(start, end), EventStatus(str(event.get("status"))),
                   str(event.get("summary", "")), str(event.get(f"{MARKER}-ABOUT", "")),
                   str(event.get(f"{MARKER}-LEAD-TZ", "UTC")), str(link) if link else None,
                   int(event.get("sequence", 0)))

    def changed(self, **changes: Any) -> BookingEvent:
        return replace(self, sequence=self.sequence + 1, **changes)


def _as_utc(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):  # an all-day date: the rep's whole local day
        return datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)
    if value.tzinfo is None:  # floating time: the rep's wall clock
        return value.replace(tzinfo=zone).astimezone(UTC)
    return value.astimezone(UTC)


def busy_of(component: Any, zone: ZoneInfo) -> Busy | None:
    """The busy time of one VEVENT, or None if it does not block (cancelled, transparent)."""
    if str(component.get("status", "")).upper() == "CANCELLED":
        return None
    if str(component.get("transp", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    raw_start = component.decoded("dtstart")
    start = _as_utc(raw_start, zone)
    if component.get("dtend") is not None:
        end = _as_utc(component.decoded("dtend"), zone)
    elif component.get("duration") is not None:
        end = start + component.decoded("duration")
    elif not isinstance(raw_start, datetime):
        end = start + timedelta(days=1)
    else:
        end = start
    return Busy(start, max(end, start))


def uid_of(component: Any) -> str:
    return str(component.get("uid", ""))
