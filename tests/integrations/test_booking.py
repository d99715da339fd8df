"""Booking with confirmations against real servers: Radicale (calendar), aiosmtpd (email to the
rep with the ICS), the Twilio stand-in (SMS to the lead), a webhook receiver. A booking is
pending until its confirmations are delivered; failed ones retry through the outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from reautod.dialogue.scheduling import BookingRequest, BookingStatus, Slot
from reautod.integrations.credentials import Credentials
from reautod.store.database import Database
from reautod.store.repositories import AppointmentRepository, OutboxRepository
from tests.integrations.radicale_server import Radicale, get_events
from tests.integrations.smtp_server import Inbox, smtp_server
from tests.integrations.stack import REP_EMAIL, stack
from tests.integrations.standins import WebhookReceiver
from tests.store.factories import campaign_contact_lead
from tests.telephony.twilio_standin import TwilioStandIn

MONDAY_9 = Slot(datetime(2026, 11, 2, 14, tzinfo=UTC), datetime(2026, 11, 2, 15, tzinfo=UTC))
TUESDAY_9 = Slot(datetime(2026, 11, 3, 14, tzinfo=UTC), datetime(2026, 11, 3, 15, tzinfo=UTC))


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn("AC" + "1" * 32, "twilio-token") as standin:
        yield standin


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as running:
        yield running


async def request_for(db: Database) -> BookingRequest:
    campaign, contact, lead = await campaign_contact_lead(db)
    return BookingRequest(campaign_id=str(campaign.id), contact_id=str(contact.id),
                          lead_id=str(lead.id), call_id=None, name="Pat Doe",
                          phone_e164=contact.phone_e164, email=None, timezone="America/Chicago")


def status_of(caldav: Radicale) -> list[str]:
    return [str(next(iter(Calendar.from_ical(ics).walk("VEVENT")))["status"])
            for ics in get_events(caldav).values()]


async def test_booking_is_pending_until_sms_and_email_are_delivered(
    db: Database, caldav_server: Radicale, twilio: TwilioStandIn, inbox: Inbox,
    credentials: Callable[..., Credentials],
) -> None:
    request = await request_for(db)
    twilio.message_failures = [(503, 20503)]  # the first SMS attempt fails: retried
    with WebhookReceiver() as receiver:
        async with stack(db, caldav_server, twilio, inbox, receiver.base_url, credentials) as s:
            booking = await s.booking.book(MONDAY_9, request)
            assert booking.status is BookingStatus.PENDING
            assert status_of(caldav_server) == ["TENTATIVE"]
            await s.drain()
            # Webhook and email delivered, the SMS waits for its retry: still pending.
            appointment = await AppointmentRepository(db).get(uuid.UUID(booking.ref))
            assert appointment.status == "booked" and twilio.messages == []
            [mail] = inbox.messages
            assert mail["To"] == REP_EMAIL and "Pat Doe" in mail["Subject"]
            [attachment] = [p for p in mail.iter_attachments() if p.get_content_type() == "text/calendar"]
            invite = next(iter(Calendar.from_ical(attachment.get_content()).walk("VEVENT")))
            assert str(invite["uid"]) == booking.ref and invite.decoded("dtstart") == MONDAY_9.start
            [hook] = receiver.accepted()
            body = json.loads(hook.body)
            assert body["type"] == "appointment.booked" and body["data"]["status"] == "pending"
            assert body["data"]["meeting_link"] == f"https://meet.example.com/{booking.ref}"

            s.clock.advance(seconds=30)
            await s.drain()
            [sms] = twilio.messages
            assert sms.to == request.phone_e164
            assert "Monday 02 November at 08:00 (America/Chicago)" in sms.body
            assert (await AppointmentRepository(db).get(uuid.UUID(booking.ref))).status == "confirmed"
            assert status_of(caldav_server) == ["CONFIRMED"]

            # Moved: pending again until its own confirmations are out, then confirmed.
            moved = await s.booking.reschedule(booking.ref, TUESDAY_9)
            assert moved.status is BookingStatus.PENDING
            assert (await AppointmentRepository(db).get(uuid.UUID(booking.ref))).status == "booked"
            await s.drain()
            assert (await AppointmentRepository(db).get(uuid.UUID(booking.ref))).status == "confirmed"
            rescheduled = json.loads(receiver.accepted()[-1].body)
            assert rescheduled["type"] == "appointment.rescheduled"
            assert rescheduled["data"]["previous_starts_at"] == "2026-11-02T14:00:00Z"
            assert "has moved to Tuesday 03 November" in twilio.messages[-1].body

            await s.booking.cancel(booking.ref)
            await s.booking.cancel(booking.ref)  # idempotent: announced once
            await s.drain()
            assert (await AppointmentRepository(db).get(uuid.UUID(booking.ref))).status == "cancelled"
            assert [json.loads(r.body)["type"] for r in receiver.accepted()][-1] == "appointment.cancelled"
            assert len([r for r in receiver.accepted() if b"appointment.cancelled" in r.body]) == 1
            cancel_mail = inbox.messages[-1]
            [cancel_ics] = [p for p in cancel_mail.iter_attachments()]
            assert "METHOD:CANCEL" in cancel_ics.get_content()
            assert "is cancelled" in twilio.messages[-1].body


async def test_a_confirmation_that_fails_for_good_leaves_the_booking_pending(
    db: Database, caldav_server: Radicale, twilio: TwilioStandIn, inbox: Inbox,
    credentials: Callable[..., Credentials],
) -> None:
    request = await request_for(db)
    twilio.message_failures = [(400, 21211)]  # not a number that takes texts: no retry
    with WebhookReceiver() as receiver:
        async with stack(db, caldav_server, twilio, inbox, receiver.base_url, credentials) as s:
            booking = await s.booking.book(MONDAY_9, request)
            await s.drain()
            [dead] = await OutboxRepository(db).dead()
            assert dead.channel == "sms" and "21211" in (dead.last_error or "")
            assert (await AppointmentRepository(db).get(uuid.UUID(booking.ref))).status == "booked"
            assert status_of(caldav_server) == ["TENTATIVE"]
            # The operator fixes it and retries the dead letter: delivered, confirmed.
            await OutboxRepository(db).retry([dead.id], s.clock())
            await s.drain()
            assert (await AppointmentRepository(db).get(uuid.UUID(booking.ref))).status == "confirmed"


async def test_a_booking_the_store_refuses_gives_the_slot_back(
    db: Database, caldav_server: Radicale, twilio: TwilioStandIn, inbox: Inbox,
    credentials: Callable[..., Credentials],
) -> None:
    request = await request_for(db)
    unknown = BookingRequest(**{**request.__dict__, "contact_id": str(uuid.uuid4())})
    with WebhookReceiver() as receiver:
        async with stack(db, caldav_server, twilio, inbox, receiver.base_url, credentials) as s:
            with pytest.raises(Exception, match="database rejected"):
                await s.booking.book(MONDAY_9, unknown)
            assert status_of(caldav_server) == ["CANCELLED"]
            assert MONDAY_9 in await s.booking.free_slots(MONDAY_9.start, MONDAY_9.end)
