"""Booking appointments for a human: the `Scheduler` interface the agent books through.

The agent's book_appointment tool only ever talks to a `Scheduler`. Implementations: the
campaign's own slots (business hours in the agent's timezone, slot length, buffer, bookings per
slot, kept in the `appointments` table) and a rep's CalDAV calendar (reautod.integrations).

Every datetime crossing this interface is timezone-aware UTC; the lead's local time is only for
speaking (`Slot.local`), never for storing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from reautod.errors import ReautodError, ValidationError


class SlotTakenError(ReautodError):
    """The slot was free when offered and is not any more (another call, or the rep's calendar)."""

    code = "slot_taken"


class BookingStatus(StrEnum):
    PENDING = "pending"  # held for the lead; confirmations not yet delivered
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Slot:
    """A bookable stretch of time, [start, end), in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start, "slot start"))
        object.__setattr__(self, "end", _utc(self.end, "slot end"))
        if self.end <= self.start:
            raise ValidationError("a slot must end after it starts")

    def local(self, timezone: str) -> datetime:
        """The slot's start in `timezone` (the lead's), for speaking it."""
        return self.start.astimezone(ZoneInfo(timezone))


@dataclass(frozen=True)
class BookingRequest:
    """Who the appointment is for and where it came from; `timezone` is the lead's (IANA)."""

    campaign_id: str
    contact_id: str
    lead_id: str | None
    call_id: str | None
    name: str
    phone_e164: str
    email: str | None
    timezone: str
    notes: str = ""


@dataclass(frozen=True)
class Booking:
    """A booked appointment: `ref` is the scheduler's own key (an appointments row id, a CalDAV
    event UID); `meeting_link` is set where the scheduler makes one."""

    ref: str
    slot: Slot
    status: BookingStatus
    meeting_link: str | None = None


class Scheduler(Protocol):
    """Where appointments are found and booked; conflicts are re-checked at booking time."""

    async def free_slots(self, start: datetime, end: datetime, *, limit: int = 10) -> list[Slot]:
        """Bookable slots starting in [start, end) (UTC-aware), earliest first, at most `limit`."""
        ...

    async def book(self, slot: Slot, request: BookingRequest) -> Booking:
        """Take `slot` for `request`; raise SlotTakenError if it is no longer free."""
        ...

    async def reschedule(self, ref: str, slot: Slot) -> Booking:
        """Move booking `ref` to `slot`; SlotTakenError if taken, NotFoundError if unknown."""
        ...

    async def cancel(self, ref: str) -> None:
        """Cancel booking `ref` (idempotent); NotFoundError if unknown."""
        ...
