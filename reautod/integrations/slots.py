"""Bookable slots from a rep's working hours and busy times: pure functions, no I/O.

Working hours are wall-clock times in the rep's zone, so 09:00 stays 09:00 across a DST change
(13:00Z in summer, 14:00Z in winter for New York). A slot is `slot_minutes` of absolute time
from its local start; local starts that do not exist (the skipped hour of spring-forward) are
left out, and a repeated local hour (fall-back) is taken at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from reautod.dialogue.scheduling import Slot


@dataclass(frozen=True)
class WorkingHours:
    timezone: str
    workdays: frozenset[int]  # 0 = Monday
    day_start: time
    day_end: time
    slot_minutes: int
    buffer_minutes: int = 0


@dataclass(frozen=True)
class Busy:
    """A stretch of the rep's calendar that is taken, [start, end) in UTC."""

    start: datetime
    end: datetime


def _local_days(start: datetime, end: datetime, zone: ZoneInfo) -> Iterator[date]:
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def _exists(local: datetime) -> bool:
    """False for a wall-clock time the zone skips (spring-forward)."""
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(
        tzinfo=None)


def candidate_slots(hours: WorkingHours, start: datetime, end: datetime) -> Iterator[Slot]:
    """Slots of the working hours starting in [start, end), in order."""
    zone = ZoneInfo(hours.timezone)
    length = timedelta(minutes=hours.slot_minutes)
    for day in _local_days(start, end, zone):
        if day.weekday() not in hours.workdays:
            continue
        local = datetime.combine(day, hours.day_start, tzinfo=zone)
        close = datetime.combine(day, hours.day_end)
        while local.replace(tzinfo=None) + length <= close:
            if _exists(local):
                utc = local.astimezone(UTC)
                if start <= utc < end:
                    yield Slot(utc, utc + length)
            local = local + length  # wall-clock arithmetic: stays on the grid across DST


def overlaps(slot: Slot, busy: Iterable[Busy], buffer: timedelta) -> bool:
    return any(b.start < slot.end + buffer and slot.start - buffer < b.end for b in busy)


def free_slots(hours: WorkingHours, busy: list[Busy], start: datetime, end: datetime,
               limit: int) -> list[Slot]:
    """The first `limit` candidate slots in [start, end) that no busy time overlaps (with the
    buffer kept around other events)."""
    buffer = timedelta(minutes=hours.buffer_minutes)
    found: list[Slot] = []
    for slot in candidate_slots(hours, start, end):
        if not overlaps(slot, busy, buffer):
            found.append(slot)
            if len(found) >= limit:
                break
    return found


def on_grid(hours: WorkingHours, slot: Slot) -> bool:
    """Whether `slot` is one of the working-hours slots (what may be booked)."""
    return any(s == slot for s in candidate_slots(hours, slot.start, slot.start + timedelta(seconds=1)))
