"""The `Scheduler` on a rep's CalDAV calendar (the `caldav` package's async client).

Free slots are the working hours (slots.py) minus the calendar's busy times (events expanded,
recurring ones included; cancelled and transparent ones do not block).

Two calls never take one slot:
- in one daemon, booking is serialised by a lock: the slot is re-checked against the calendar
  and written while no other booking runs;
- across daemons (or a second process), each slot's event has a resource name derived from its
  start (`reautod-<start>.ics`) and is created with `If-None-Match: *`: the server creates it
  once and answers 412 to every later attempt, which becomes SlotTakenError.
What neither covers: an event the rep creates by hand in the instant between the re-check and the
write (the rep's own double-booking), and two daemons configured with different slot grids.

A booking's ref is its event's UID. It is `pending` (STATUS:TENTATIVE) until `confirm`;
`reschedule` keeps the UID and moves the event; `cancel` removes it from the slot (freeing the
name) and keeps a cancelled copy (`reautod-cancelled-<uid>.ics`), so a second cancel is a no-op
and an unknown ref stays distinguishable.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from caldav import aio
from caldav.lib import error as caldav_error

from reautod.dialogue.scheduling import (
    Booking,
    BookingRequest,
    Slot,
    SlotTakenError,
)
from reautod.errors import NotFoundError, UnavailableError, ValidationError
from reautod.integrations.ics import BOOKING_STATUS, BookingEvent, EventStatus, busy_of, uid_of
from reautod.integrations.settings import CalDAVSettings
from reautod.integrations.slots import Busy, WorkingHours, free_slots, on_grid, overlaps
from reautod.observability.metrics import Metrics
from reautod.resilience.service import Resilience, is_transient
from reautod.store.types import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _async(value: Awaitable[T] | T) -> T:
    """caldav's objects are dual-mode: with the async client their methods return coroutines."""
    if inspect.isawaitable(value):
        return await value
    return value


def slot_href(slot: Slot) -> str:
    return f"reautod-{slot.start:%Y%m%dT%H%M%SZ}.ics"


def cancelled_href(uid: str) -> str:
    return f"reautod-cancelled-{uid}.ics"


class CalDAVRefusedError(UnavailableError):
    """The server answered with an error status: transient only for 5xx."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _transient(err: BaseException) -> bool:
    if isinstance(err, CalDAVRefusedError):
        return err.status >= 500
    return is_transient(err)


class CalDAVScheduler:
    """Books on one CalDAV calendar; `open()` before use, `close()` after."""

    def __init__(self, settings: CalDAVSettings, password: str, *, business_name: str,
                 clock: Callable[[], datetime] = utcnow, metrics: Metrics | None = None,
                 resilience: Resilience | None = None) -> None:
        self.settings = settings
        # reads are retried by the caldav policy; writes are not (a create that reached the
        # server would come back 412 and read as "slot taken"); every request counts on the
        # caldav circuit, except the server's answers on purpose (HTTP 4xx)
        self.resilience = resilience or Resilience()
        self.hours = WorkingHours(settings.timezone, frozenset(settings.workdays),
                                  settings.day_start, settings.day_end, settings.slot_minutes,
                                  settings.buffer_minutes)
        self.zone = ZoneInfo(settings.timezone)
        self.business_name = business_name
        self.clock = clock
        self.metrics = metrics
        self._client = aio.AsyncDAVClient(url=settings.url, username=settings.username,
                                          password=password, timeout=int(settings.timeout_s))
        self._calendar: aio.Calendar | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Find the configured calendar; UnavailableError if the server or calendar is missing."""
        try:
            principal = await self._client.get_principal()
            calendars = await _async(principal.get_calendars())
            for calendar in calendars:
                name = await _async(calendar.get_display_name())
                segment = str(calendar.url).rstrip("/").rsplit("/", 1)[-1]
                if self.settings.calendar in (name, segment):
                    self._calendar = calendar
                    return
        except (caldav_error.DAVError, OSError) as err:
            raise UnavailableError(f"CalDAV server {self.settings.url}: {err}") from err
        raise UnavailableError(f"no calendar {self.settings.calendar!r} at {self.settings.url}")

    async def close(self) -> None:
        await self._client.close()

    @property
    def calendar(self) -> aio.Calendar:
        if self._calendar is None:
            raise UnavailableError("the CalDAV calendar is not open")
        return self._calendar

    def _url(self, href: str) -> str:
        return str(self.calendar.url).rstrip("/") + "/" + href

    async def _busy(self, start: datetime, end: datetime, *,
                    except_uid: str | None = None) -> list[Busy]:
        async def search() -> list[Any]:
            try:
                return list(await _async(
                    self.calendar.search(start=start, end=end, event=True, expand=True)))
            except (caldav_error.DAVError, OSError) as err:
                raise UnavailableError(f"CalDAV search failed: {err}") from err

        events = await self.resilience.call("caldav", search, transient=_transient)
        busy = []
        for event in events:
            for component in event.icalendar_instance.walk("VEVENT"):
                if except_uid is not None and uid_of(component) == except_uid:
                    continue
                taken = busy_of(component, self.zone)
                if taken is not None:
                    busy.append(taken)
        return busy

    async def free_slots(self, start: datetime, end: datetime, *, limit: int = 10) -> list[Slot]:
        window = Slot(start, end)  # validates: aware, end after start
        earliest = self.clock() + timedelta(minutes=self.settings.min_notice_minutes)
        start = max(window.start, earliest)
        if start >= window.end:
            return []
        margin = timedelta(minutes=self.hours.buffer_minutes + self.hours.slot_minutes)
        busy = await self._busy(start - margin, window.end + margin)
        return free_slots(self.hours, busy, start, window.end, limit)

    def meeting_link(self, uid: str, slot: Slot) -> str | None:
        template = self.settings.meeting_link_template
        if template is None:
            return None
        return template.format(booking=uid, start=f"{slot.start:%Y%m%dT%H%M%SZ}",
                               date=f"{slot.start:%Y-%m-%d}")

    async def _check_free(self, slot: Slot, except_uid: str | None = None) -> None:
        if not on_grid(self.hours, slot):
            raise ValidationError("that time is not one of the bookable slots")
        if slot.start < self.clock() + timedelta(minutes=self.settings.min_notice_minutes):
            raise SlotTakenError("that slot is too soon to book")
        buffer = timedelta(minutes=self.hours.buffer_minutes)
        busy = await self._busy(slot.start - buffer, slot.end + buffer, except_uid=except_uid)
        if overlaps(slot, busy, buffer):
            self._conflict()
            raise SlotTakenError("that slot was just taken")

    def _conflict(self) -> None:
        if self.metrics is not None:
            self.metrics.calendar_conflict()

    async def _put(self, href: str, event: BookingEvent, *, create: bool) -> None:
        await self.resilience.call("caldav", lambda: self._put_once(href, event, create=create),
                                   transient=_transient, retries=False)

    async def _put_once(self, href: str, event: BookingEvent, *, create: bool) -> None:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if create:
            headers["If-None-Match"] = "*"
        try:
            response = await self._client.put(self._url(href), event.ics().decode(), headers)
        except (caldav_error.DAVError, OSError) as err:
            raise UnavailableError(f"CalDAV write failed: {err}") from err
        if response.status == 412 and create:
            self._conflict()
            raise SlotTakenError("that slot was just taken")
        if response.status not in (200, 201, 204):
            raise CalDAVRefusedError(f"CalDAV refused the event: HTTP {response.status}",
                                     response.status)

    async def _delete(self, href: str) -> None:
        await self.resilience.call("caldav", lambda: self._delete_once(href),
                                   transient=_transient)

    async def _delete_once(self, href: str) -> None:
        try:
            response = await self._client.delete(self._url(href))
        except (caldav_error.DAVError, OSError) as err:
            raise UnavailableError(f"CalDAV delete failed: {err}") from err
        if response.status not in (200, 204, 404):
            raise CalDAVRefusedError(f"CalDAV refused the delete: HTTP {response.status}",
                                     response.status)

    async def event(self, ref: str) -> tuple[str, BookingEvent]:
        """The booking's event and its resource name; NotFoundError if no such booking."""
        try:
            found = await _async(self.calendar.get_event_by_uid(ref))
        except caldav_error.NotFoundError as err:
            raise NotFoundError(f"no booking {ref}") from err
        except (caldav_error.DAVError, OSError) as err:
            raise UnavailableError(f"CalDAV lookup failed: {err}") from err
        href = str(found.url).rstrip("/").rsplit("/", 1)[-1]
        return href, BookingEvent.parse(found.data)

    def _booking(self, event: BookingEvent) -> Booking:
        return Booking(event.uid, event.slot, BOOKING_STATUS[event.status], event.meeting_link)

    async def book(self, slot: Slot, request: BookingRequest) -> Booking:
        uid = str(uuid.uuid4())
        event = BookingEvent.for_request(uid, slot, request, self.business_name,
                                         self.meeting_link(uid, slot))
        async with self._lock:
            await self._check_free(slot)
            await self._put(slot_href(slot), event, create=True)
        log.info("booked %s on the calendar for %s", uid, slot.start.isoformat())
        return self._booking(event)

    async def reschedule(self, ref: str, slot: Slot) -> Booking:
        async with self._lock:
            href, old = await self.event(ref)
            if old.status is EventStatus.CANCELLED:
                raise ValidationError(f"booking {ref} was cancelled")
            if old.slot == slot:
                return self._booking(old)
            await self._check_free(slot, except_uid=ref)
            moved = old.changed(slot=slot, status=EventStatus.TENTATIVE,
                                meeting_link=self.meeting_link(ref, slot))
            # One UID may live at one resource only: free the old slot, take the new one, and
            # put the old one back if the new one was taken in between.
            await self._delete(href)
            try:
                await self._put(slot_href(slot), moved, create=True)
            except SlotTakenError:
                await self._put(href, old, create=True)
                raise
        return self._booking(moved)

    async def cancel(self, ref: str) -> None:
        async with self._lock:
            href, event = await self.event(ref)
            if event.status is EventStatus.CANCELLED:
                return
            await self._delete(href)
            await self._put(cancelled_href(ref), event.changed(status=EventStatus.CANCELLED),
                            create=False)

    async def confirm(self, ref: str) -> Booking:
        """Mark the booking confirmed (its confirmations were delivered)."""
        async with self._lock:
            href, event = await self.event(ref)
            if event.status is EventStatus.TENTATIVE:
                event = event.changed(status=EventStatus.CONFIRMED)
                await self._put(href, event, create=False)
        return self._booking(event)

