"""Booking with confirmations: the `Scheduler` the agent books through when a rep's CalDAV
calendar is configured.

`book` takes the slot on the calendar (pending: STATUS:TENTATIVE), records the appointment,
and queues in the outbox the `appointment.booked` webhook and the confirmations (SMS to the
lead, email with the ICS to the rep), all under the booking event's id. When every confirmation
of that event is delivered (`delivered`, a DeliveryListener of the worker) the booking becomes
confirmed on the calendar and in the store. A confirmation that keeps failing retries and then
waits in the dead letters; the booking stays pending meanwhile. With no confirmation channel
configured a booking is confirmed at once.

If the database refuses the appointment after the calendar took the slot, the calendar booking
is cancelled again, so no slot is held for a booking the store does not know.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Literal

from reautod.dialogue.scheduling import Booking, BookingRequest, BookingStatus, Slot
from reautod.errors import ReautodError
from reautod.integrations.caldav_scheduler import CalDAVScheduler
from reautod.integrations.confirmations import EmailConfirmation, SmsConfirmation
from reautod.integrations.events import (
    AppointmentBookedEvent,
    AppointmentCancelledEvent,
    AppointmentData,
    AppointmentRescheduledEvent,
    CampaignRef,
    LeadRef,
    WebhookEvent,
)
from reautod.integrations.ics import EVENT_STATUS, BookingEvent
from reautod.integrations.settings import ConfirmationSettings
from reautod.integrations.webhooks import WebhookPublisher
from reautod.observability.logging import mask_phone
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import AppointmentStatus, OutboxChannel
from reautod.store.repositories import (
    AppointmentRepository,
    AppointmentRow,
    CampaignRepository,
    ContactRepository,
    NewMessage,
    OutboxMessage,
    OutboxRepository,
)

log = logging.getLogger(__name__)

Change = Literal["booked", "rescheduled", "cancelled"]


class BookingService:
    """A `Scheduler` over a CalDAV calendar that records, announces and confirms bookings."""

    def __init__(self, calendar: CalDAVScheduler, db: Database, publisher: WebhookPublisher,
                 settings: ConfirmationSettings, *, sms_enabled: bool, email_to: str | None) -> None:
        self.calendar = calendar
        self.db = db
        self.appointments = AppointmentRepository(db)
        self.outbox = OutboxRepository(db)
        self.publisher = publisher
        self.settings = settings
        self.sms = sms_enabled and settings.sms
        self.email_to = email_to if settings.email else None

    async def free_slots(self, start: datetime, end: datetime, *, limit: int = 10) -> list[Slot]:
        return await self.calendar.free_slots(start, end, limit=limit)

    async def book(self, slot: Slot, request: BookingRequest) -> Booking:
        booking = await self.calendar.book(slot, request)
        try:
            row = await self.appointments.book(
                uuid.UUID(request.contact_id), slot.start, slot.end,
                appointment_id=uuid.UUID(booking.ref),
                campaign_id=uuid.UUID(request.campaign_id) if request.campaign_id else None,
                call_id=call_uuid(request.call_id) if request.call_id else None,
                timezone=request.timezone, calendar_ref=booking.ref, notes=request.notes or None)
            return await self._announce(row, booking, "booked")
        except (ReautodError, ValueError):
            await self.calendar.cancel(booking.ref)
            raise

    async def reschedule(self, ref: str, slot: Slot) -> Booking:
        before = await self.appointments.get(uuid.UUID(ref))
        booking = await self.calendar.reschedule(ref, slot)
        if booking.slot.start == before.starts_at:
            return booking
        await self.appointments.move(before.id, slot.start, slot.end)
        row = await self.appointments.get(before.id)
        return await self._announce(row, booking, "rescheduled", previous=before.starts_at)

    async def cancel(self, ref: str) -> None:
        await self.calendar.cancel(ref)
        row = await self.appointments.get(uuid.UUID(ref))
        if row.status != AppointmentStatus.CANCELLED:
            await self.appointments.set_status(row.id, AppointmentStatus.CANCELLED)
            _, event = await self.calendar.event(ref)
            cancelled = Booking(ref, event.slot, BookingStatus.CANCELLED, event.meeting_link)
            await self._announce(row, cancelled, "cancelled")

    async def _announce(self, row: AppointmentRow, booking: Booking, change: Change, *,
                        previous: datetime | None = None) -> Booking:
        contact = await ContactRepository(self.db).get(row.contact_id)
        campaign = await CampaignRepository(self.db).get(row.campaign_id) if row.campaign_id else None
        timezone = row.timezone or self.calendar.settings.timezone
        data = AppointmentData(
            appointment_id=str(row.id), calendar_ref=booking.ref, starts_at=booking.slot.start,
            ends_at=booking.slot.end, timezone=timezone, status=booking.status.value,
            meeting_link=booking.meeting_link, call_id=str(row.call_id) if row.call_id else None,
            previous_starts_at=previous)
        envelope = {
            "campaign": CampaignRef(id=str(campaign.id), name=campaign.name) if campaign else None,
            "lead": LeadRef(contact_id=str(contact.id), phone=contact.phone_e164,
                            name=contact.name, email=contact.email, timezone=timezone),
            "data": data,
        }
        event: WebhookEvent = (
            AppointmentBookedEvent(**envelope) if change == "booked"
            else AppointmentRescheduledEvent(**envelope) if change == "rescheduled"
            else AppointmentCancelledEvent(**envelope))
        confirming = change != "cancelled"
        notices = self._notices(event.id, row, booking, change, contact.phone_e164,
                                contact.name or "there", timezone)
        messages = self.publisher.messages(event) + notices
        await self.outbox.enqueue_many(messages)
        if self.publisher.wake is not None:
            self.publisher.wake()
        log.info("appointment %s %s; %d confirmation(s) to %s", row.id, change, len(notices),
                 mask_phone(contact.phone_e164))
        if confirming and not notices:
            return await self._confirm(booking.ref)
        return booking

    def _notices(self, event_id: uuid.UUID, row: AppointmentRow, booking: Booking, change: Change,
                 phone: str, name: str, timezone: str) -> list[NewMessage]:
        confirms = change != "cancelled"
        local = booking.slot.local(timezone)
        when = f"{local:%A %d %B at %H:%M} ({timezone})"
        link = f" Join: {booking.meeting_link}" if booking.meeting_link and confirms else ""
        business = self.settings.business_name
        common = {"appointment_id": str(row.id), "booking_ref": booking.ref, "confirms": confirms,
                  "starts_at": booking.slot.start}
        out: list[NewMessage] = []
        if self.sms:
            text = {"booked": f"{business}: your call is booked for {when}.{link}",
                    "rescheduled": f"{business}: your call has moved to {when}.{link}",
                    "cancelled": f"{business}: your call on {when} is cancelled."}[change]
            sms = SmsConfirmation(to=phone, body=text, **common)
            out.append(NewMessage(f"appointment.{change}", f"sms:{phone}",
                                  sms.model_dump(mode="json"), event_id=event_id,
                                  channel=OutboxChannel.SMS, endpoint="sms",
                                  contact_id=row.contact_id, ordering_key=str(row.contact_id)))
        if self.email_to:
            calendar_event = BookingEvent(
                booking.ref, booking.slot, EVENT_STATUS[booking.status],
                f"{business}: call with {name}", f"Lead: {name}\nPhone: {phone}", timezone,
                booking.meeting_link)
            rep_local = booking.slot.local(self.calendar.settings.timezone)
            email = EmailConfirmation(
                to=self.email_to, subject=f"Appointment {change}: {name}, {rep_local:%a %d %b %H:%M}",
                text=calendar_event.description, ics_method="CANCEL" if change == "cancelled" else "PUBLISH",
                ics=calendar_event.ics(method="CANCEL" if change == "cancelled" else "PUBLISH").decode(),
                **common)
            out.append(NewMessage(f"appointment.{change}", f"mailto:{self.email_to}",
                                  email.model_dump(mode="json"), event_id=event_id,
                                  channel=OutboxChannel.EMAIL, endpoint="email",
                                  contact_id=row.contact_id, ordering_key=str(row.contact_id)))
        return out

    async def _confirm(self, ref: str) -> Booking:
        booking = await self.calendar.confirm(ref)
        await self.appointments.set_status(uuid.UUID(ref), AppointmentStatus.CONFIRMED)
        return booking

    async def delivered(self, message: OutboxMessage) -> None:
        """A DeliveryListener: once every confirmation of a booking event is delivered, the
        booking is confirmed (a later change re-opens it with confirmations of its own)."""
        if message.channel == OutboxChannel.WEBHOOK or message.event_id is None:
            return
        if not message.payload.get("confirms"):
            return
        siblings = [m for m in await self.outbox.of_event(message.event_id)
                    if m.channel != OutboxChannel.WEBHOOK]
        if all(m.status == "delivered" for m in siblings):
            ref = str(message.payload["booking_ref"])
            row = await self.appointments.get(uuid.UUID(ref))
            # a confirmation of a slot the booking has since left never confirms the new one
            about = datetime.fromisoformat(str(message.payload.get("starts_at")))
            if row.status == AppointmentStatus.BOOKED and row.starts_at == about:
                await self._confirm(ref)
