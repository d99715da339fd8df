"""Issue 14's "done when", at library level: one booked call produces a CalDAV event on Radicale,
an email with the ICS on the SMTP server, an SMS to the lead, signed webhooks at a receiver (and a
dead letter where a receiver keeps failing), a row in the results sheet, and the same call in
JSON, CSV and XML exports. On Postgres, the system of record."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from icalendar import Calendar
from lxml import etree

from reautod.dialogue.scheduling import BookingRequest
from reautod.integrations.credentials import Credentials
from reautod.integrations.events import (
    CallCompleted,
    CallCompletedEvent,
    CampaignRef,
    LeadQualified,
    LeadQualifiedEvent,
    LeadRef,
)
from reautod.integrations.exports import XSD_PATH, Dataset, Format, stream_export
from reautod.integrations.settings import DeliverySettings, SheetsSettings
from reautod.integrations.sheets import CallResult, ResultsSheet, ServiceAccountKey, SheetsClient
from reautod.store.database import Database
from reautod.store.enums import CallOutcome, CallStatus, OutboxStatus
from reautod.store.records import CallEnded
from reautod.store.repositories import CallRepository, OutboxRepository
from tests.integrations.helpers import docs_snippet
from tests.integrations.radicale_server import Radicale, get_events
from tests.integrations.sheets_standin import SheetsStandIn
from tests.integrations.smtp_server import smtp_server
from tests.integrations.stack import SECRET, stack
from tests.integrations.standins import TokenServer, WebhookReceiver
from tests.integrations.test_booking import MONDAY_9
from tests.integrations.test_sheets import EMAIL, service_account_key
from tests.store.factories import T0, call_started, campaign_contact_lead, turn
from tests.telephony.twilio_standin import TwilioStandIn


async def export(db: Database, dataset: Dataset, fmt: Format) -> bytes:
    return b"".join([c async for c in stream_export(db, dataset, fmt, campaign="spring")])


async def test_a_booked_call_reaches_every_tool(
    pg_db: Database, caldav_server: Radicale, credentials: Callable[..., Credentials],
) -> None:
    db = pg_db
    campaign, contact, lead = await campaign_contact_lead(db)
    started = call_started(campaign, contact, lead, call_sid="CA" + "7" * 32)
    ended = CallEnded(call_id=started.call_id, ended_at=T0 + timedelta(minutes=3),
                      status=CallStatus.COMPLETED, outcome=CallOutcome.BOOKED,
                      answered_at=T0 + timedelta(seconds=5), duration_ms=175_000)
    await CallRepository(db).write([started, turn(started.call_id, 1), turn(started.call_id, 2), ended])
    call_id = str(started.call_id)
    verify = docs_snippet("verify_reautod_webhook")["verify_reautod_webhook"]

    with (TwilioStandIn("AC" + "2" * 32, "token") as twilio, smtp_server() as inbox,
          TokenServer() as tokens, SheetsStandIn(tokens) as google,
          WebhookReceiver() as crm, WebhookReceiver(default=500) as broken):
        key_json, public = service_account_key(tokens.token_url)
        tokens.public_keys[EMAIL] = public
        google.sheets["results-1"] = {"Results": []}
        sheet_settings = SheetsSettings(api_base_url=google.base_url,
                                        results_spreadsheet_id="results-1")
        results = ResultsSheet(SheetsClient(sheet_settings, ServiceAccountKey.parse(key_json)),
                               sheet_settings)
        async with stack(db, caldav_server, twilio, inbox, crm.base_url, credentials,
                         delivery=DeliverySettings(max_attempts=3, backoff_base_s=10),
                         more_receivers={"broken": broken.base_url},
                         more_deliverers={"sheets": results}) as s:
            booking = await s.booking.book(MONDAY_9, BookingRequest(
                campaign_id=str(campaign.id), contact_id=str(contact.id), lead_id=str(lead.id),
                call_id=call_id, name="Pat Doe", phone_e164=contact.phone_e164, email=None,
                timezone="America/Denver"))
            who = {"campaign": CampaignRef(id=str(campaign.id), name=campaign.name),
                   "lead": LeadRef(contact_id=str(contact.id), lead_id=str(lead.id),
                                   phone=contact.phone_e164, name="Pat Doe")}
            await s.publisher.publish(CallCompletedEvent(**who, data=CallCompleted(
                call_id=call_id, call_sid=started.call_sid, status="completed", outcome="booked",
                started_at=T0, answered_at=ended.answered_at, ended_at=ended.ended_at,
                duration_s=175.0, score=88)))
            await s.publisher.publish(LeadQualifiedEvent(**who, data=LeadQualified(call_id=call_id, score=88)))
            await OutboxRepository(db).enqueue_many([results.message(CallResult(
                call_id=call_id, finished_at=ended.ended_at, campaign=campaign.name,
                contact_id=str(contact.id), lead_name="Pat Doe", phone=contact.phone_e164,
                status="completed", outcome="booked", score=88, appointment_at=booking.slot.start,
                lead_timezone="America/Denver", meeting_link=booking.meeting_link))])
            # The broken receiver: three attempts per event, backing off between; a dead event
            # lets the lead's next one go.
            for _ in range(9):
                await s.drain(rounds=1)
                s.clock.advance(seconds=60)

            # The calendar: the event, confirmed once the SMS and the email went out.
            [ics] = get_events(caldav_server).values()
            event = next(iter(Calendar.from_ical(ics).walk("VEVENT")))
            assert str(event["uid"]) == booking.ref and str(event["status"]) == "CONFIRMED"
            # The rep's email with the ICS, the lead's SMS.
            [mail] = inbox.messages
            [invite] = list(mail.iter_attachments())
            assert booking.ref in invite.get_content()
            assert "Monday 02 November at 07:00 (America/Denver)" in twilio.messages[0].body
            # Signed webhooks, in the order they happened for this lead.
            got = crm.accepted()
            assert [json.loads(r.body)["type"] for r in got] == [
                "appointment.booked", "call.completed", "lead.qualified"]
            assert all(verify(SECRET, r.body, r.headers["reautod-signature"]) for r in got)
            # The receiver that kept failing: the first event's three attempts, then a dead
            # letter; once its circuit opened, the lead's next events wait with attempts to spare
            # for the receiver to come back (an outage costs no more attempts, loses nothing).
            outbox = OutboxRepository(db)
            dead = await outbox.dead()
            assert [(d.event_type, d.endpoint, d.attempts) for d in dead] == [
                ("appointment.booked", "broken", 3)]
            waiting = await outbox.recent(status=OutboxStatus.PENDING, endpoint="broken")
            assert sorted(m.event_type for m in waiting) == ["call.completed", "lead.qualified"]
            assert all(m.attempts < 3 for m in waiting)
            assert len(broken.accepted()) == 3 + sum(m.attempts for m in waiting)
            # A row in the results sheet.
            header, row = google.sheets["results-1"]["Results"]
            assert header[:3] == ["finished_at", "campaign", "call_id"]
            assert row[2] == call_id and row[6] == "booked" and row[8] == "2026-11-02 07:00 MST"
            await results.aclose()

    # The same call in all three export formats, and its appointment.
    [as_json] = json.loads(await export(db, Dataset.CALLS, Format.JSON))
    [as_csv] = csv.DictReader(io.StringIO((await export(db, Dataset.CALLS, Format.CSV)).decode()))
    xml = etree.fromstring(await export(db, Dataset.CALLS, Format.XML))
    etree.XMLSchema(etree.parse(str(XSD_PATH))).assertValid(xml)
    ns = {"x": "urn:reautod:export:1"}
    assert as_json["call_id"] == as_csv["call_id"] == xml.findtext("x:call/x:call_id", namespaces=ns) == call_id
    assert as_json["outcome"] == as_csv["outcome"] == xml.findtext("x:call/x:outcome", namespaces=ns) == "booked"
    [appointment] = json.loads(await export(db, Dataset.APPOINTMENTS, Format.JSON))
    assert appointment["status"] == "confirmed" and appointment["call_id"] == call_id
    assert appointment["appointment_id"] == str(uuid.UUID(booking.ref))
    assert datetime.fromisoformat(appointment["starts_at"]) == MONDAY_9.start.astimezone(UTC)
