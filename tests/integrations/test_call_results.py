"""CallResults: an ended call's row, read back from the store, becomes its outbox messages."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from reautod.campaigns.pacing import Outcome
from reautod.campaigns.settings import CampaignSettings
from reautod.config import Secrets, Settings
from reautod.integrations.call_results import CallResults
from reautod.integrations.events import (
    EVENTS,
    CallCompletedEvent,
    LeadOptedOutEvent,
    LeadQualifiedEvent,
    LeadScoredEvent,
)
from reautod.integrations.settings import SheetsSettings, WebhookEndpoint
from reautod.integrations.sheets import CallResult, ResultsSheet, ServiceAccountKey, SheetsClient
from reautod.integrations.webhooks import WebhookPublisher
from reautod.live_settings import LiveSettings
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.outbound.calls import TrackedCall
from reautod.outbound.part import OutboundPart
from reautod.outbound.twilio_side import TwilioSide
from reautod.store.database import Database
from reautod.store.enums import CallDirection, CallOutcome, CallStatus
from reautod.store.records import CallEnded, ScoreUpdate
from reautod.store.repositories import AppointmentRepository, CallRepository, OutboxRepository
from reautod.store.writebehind import WriteBehind
from reautod.telephony.state_machine import StatusEvent
from tests.integrations.test_sheets import service_account_key
from tests.store.factories import T0, call_started, campaign_contact_lead

ENDPOINTS = [
    WebhookEndpoint(name="crm", url="https://crm.example/hook", secret_credential="crm_secret"),
    WebhookEndpoint(name="optouts", url="https://crm.example/dnc", secret_credential="crm_secret",
                    events=["lead.opted_out"]),
]


@pytest.fixture
def results(db: Database, writer: WriteBehind) -> CallResults:
    return CallResults(db, writer, WebhookPublisher(OutboxRepository(db), ENDPOINTS))


async def ended_call(db: Database, writer: WriteBehind, results: CallResults, *,
                     outcome: CallOutcome | None, scores: tuple[int, ...] = ()) -> uuid.UUID:
    """A dialed call as the dialer and pipeline write it, ended through the observer the way
    the daemon's fan-out reports it (the store's observer first, then the integrations).
    `scores`: what the agent scored the lead during the call, in order."""
    campaign, contact, lead = await campaign_contact_lead(db)
    call_id = uuid.uuid4()
    await CallRepository(db).write([call_started(campaign, contact, lead, call_id=call_id,
                                                 call_sid="CA" + "1" * 32)])
    await CallRepository(db).write([
        ScoreUpdate(uuid.uuid4(), score, T0 + timedelta(seconds=10 + i), call_id=call_id,
                    contact_id=contact.id, lead_id=lead.id,
                    factors={"owner": {"value": "yes", "weight": 2.0, "points": 100},
                             "timeline": {"value": None, "weight": 1.0, "points": score // 2}},
                    reason=f"{score}/100 scored")
        for i, score in enumerate(scores)])
    if outcome is not None:
        await CallRepository(db).set_result(call_id, outcome=outcome)
    writer.submit(CallEnded(call_id, T0 + timedelta(seconds=42), disposition="caller_hung_up",
                            answered_at=T0 + timedelta(seconds=5), duration_ms=37_000))
    woken: list[int] = []
    results.publisher.wake = lambda: woken.append(1)
    results.on_call_ended(call_id.hex, "caller_hung_up", 37.0)
    await results.close()
    assert woken, "the delivery worker is woken once the messages are queued"
    return call_id


async def test_a_call_end_queues_call_completed_for_every_endpoint_that_wants_it(
    db: Database, writer: WriteBehind, results: CallResults,
) -> None:
    call_id = await ended_call(db, writer, results, outcome=CallOutcome.NOT_QUALIFIED)
    rows = await OutboxRepository(db).recent()
    assert [(m.event_type, m.endpoint) for m in rows] == [("call.completed", "crm")]
    event = EVENTS.validate_python(rows[0].payload)
    assert isinstance(event, CallCompletedEvent)
    assert event.data.call_id == str(call_id) and event.data.outcome == "not_qualified"
    assert event.data.score is None  # the agent never scored this lead
    assert event.data.call_sid == "CA" + "1" * 32
    assert event.data.ended_at == T0 + timedelta(seconds=42) and event.data.duration_s == 37.0
    assert event.data.disposition == "caller_hung_up"
    assert event.campaign is not None and event.campaign.name == "spring"
    assert event.lead is not None and event.lead.phone == "+15550001111"
    assert rows[0].ordering_key == event.lead.contact_id  # one person's events stay in order


@pytest.mark.parametrize("outcome", [CallOutcome.QUALIFIED, CallOutcome.BOOKED])
async def test_a_qualified_call_announces_the_leads_last_score_and_its_qualification(
    db: Database, writer: WriteBehind, results: CallResults, outcome: CallOutcome,
) -> None:
    call_id = await ended_call(db, writer, results, outcome=outcome, scores=(40, 72))
    rows = (await OutboxRepository(db).recent())[::-1]  # oldest first
    # in the order they happened, so one lead's events reach the receiver in that order
    assert [(m.event_type, m.endpoint) for m in rows] == [
        ("call.completed", "crm"), ("lead.scored", "crm"), ("lead.qualified", "crm")]
    assert len({m.ordering_key for m in rows}) == 1
    completed, scored, qualified = (EVENTS.validate_python(m.payload) for m in rows)
    assert isinstance(completed, CallCompletedEvent) and completed.data.score == 72
    assert isinstance(scored, LeadScoredEvent)
    assert scored.data.call_id == str(call_id) and scored.data.score == 72
    assert scored.data.factors == {"owner": 100.0, "timeline": 36.0}
    assert scored.data.reason == "72/100 scored"
    assert isinstance(qualified, LeadQualifiedEvent)
    assert qualified.data.call_id == str(call_id) and qualified.data.score == 72
    assert qualified.lead is not None and qualified.lead == completed.lead


async def test_a_scored_lead_that_did_not_qualify_is_scored_not_qualified(
    db: Database, writer: WriteBehind, results: CallResults,
) -> None:
    await ended_call(db, writer, results, outcome=CallOutcome.NOT_QUALIFIED, scores=(25,))
    rows = await OutboxRepository(db).recent()
    assert [m.event_type for m in rows[::-1]] == ["call.completed", "lead.scored"]


async def test_an_opt_out_call_also_announces_the_opt_out(
    db: Database, writer: WriteBehind, results: CallResults,
) -> None:
    call_id = await ended_call(db, writer, results, outcome=CallOutcome.OPTED_OUT)
    rows = await OutboxRepository(db).recent()
    assert sorted((m.event_type, m.endpoint) for m in rows) == [
        ("call.completed", "crm"), ("lead.opted_out", "crm"), ("lead.opted_out", "optouts")]
    opted = EVENTS.validate_python(next(m for m in rows if m.endpoint == "optouts").payload)
    assert isinstance(opted, LeadOptedOutEvent)
    assert opted.data.call_id == str(call_id) and opted.data.scope == "global"


async def test_a_call_the_store_never_got_queues_nothing(
    db: Database, results: CallResults, caplog: pytest.LogCaptureFixture,
) -> None:
    results.on_call_ended("sim-notstored", "hangup", 1.0)
    await results.close()
    assert await OutboxRepository(db).recent() == []
    assert "results of call sim-notstored not queued" in caplog.text


async def test_a_dialed_call_no_pipeline_ran_is_completed_with_twilios_status(
    db: Database, writer: WriteBehind, results: CallResults,
) -> None:
    campaign, contact, lead = await campaign_contact_lead(db)
    call_id = uuid.uuid4()
    await CallRepository(db).write([call_started(campaign, contact, lead, call_id=call_id,
                                                 status=CallStatus.NO_ANSWER)])
    await CallRepository(db).set_result(call_id, outcome=CallOutcome.NO_ANSWER)
    results.ended_without_conversation(str(call_id), "no_answer")
    await results.close()
    [row] = await OutboxRepository(db).recent()
    event = EVENTS.validate_python(row.payload)
    assert isinstance(event, CallCompletedEvent)
    assert (event.data.status, event.data.outcome) == ("no_answer", "no_answer")
    assert event.lead is not None and event.lead.contact_id == str(contact.id)


async def test_telephony_tells_of_the_calls_no_pipeline_heard(db: Database,
                                                              writer: WriteBehind) -> None:
    told: list[tuple[str, str]] = []
    metrics, bus = Metrics(), EventBus()
    telephony = OutboundPart(LiveSettings(Settings()), db,
                             TwilioSide(Settings(), Secrets({}), db, metrics, bus), writer,
                             metrics, bus,
                             line=None,
                             ended_unconnected=lambda call_id, status: told.append((call_id,
                                                                                    status)))
    unanswered, answered = (
        TrackedCall(uuid.uuid4(), "+15550001111", CallDirection.OUTBOUND, None, "spring",
                    CampaignSettings(), stream_started=started) for started in (False, True))
    unanswered.timeline.apply(StatusEvent("no-answer", 1))
    for call in (unanswered, answered):
        await telephony.outcomes.call_finished(call, Outcome.NO_ANSWER, None, T0)
    # the answered call's end came from the pipeline's observer: not told twice; the status
    # in Twilio's words, as the results' disposition carries it
    assert told == [(str(unanswered.call_id), "no-answer")]


async def test_the_results_sheet_row_carries_the_calls_appointment(
    db: Database, writer: WriteBehind,
) -> None:
    settings = SheetsSettings(results_spreadsheet_id="results-1")
    key_json, _ = service_account_key("https://oauth2.example/token")
    sheet = ResultsSheet(SheetsClient(settings, ServiceAccountKey.parse(key_json)), settings)
    results = CallResults(db, writer, WebhookPublisher(OutboxRepository(db), []), sheet=sheet)
    campaign, contact, lead = await campaign_contact_lead(db)
    call_id = uuid.uuid4()
    await CallRepository(db).write([
        call_started(campaign, contact, lead, call_id=call_id),
        CallEnded(call_id, T0 + timedelta(minutes=3), outcome=CallOutcome.BOOKED)])
    starts = T0 + timedelta(days=3)
    await AppointmentRepository(db).book(contact.id, starts, starts + timedelta(minutes=30),
                                         campaign_id=campaign.id, call_id=call_id,
                                         timezone="America/Chicago")
    try:
        [message] = await results.messages(await CallRepository(db).get(call_id), "hangup", 180.0)
        row = CallResult.model_validate(message.payload).row()
        assert row[2] == str(call_id) and row[6] == "booked"
        assert row[8] == "2026-11-23 09:00 CST"  # 15:00 UTC, in the lead's zone
    finally:
        await sheet.aclose()
