"""What the agent writes, in the store (SQLite and Postgres): the playbook a call ran, decisions
with evidence, scores with reasons, stage reach, A/B counts; and the store-backed effects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from reautod.control.commands.call import render_agent
from reautod.dialogue.call_record import AgentRecord, agent_record
from reautod.dialogue.effects import StoreCallEffects
from reautod.dialogue.ports import LeadChanges
from reautod.store.database import Database
from reautod.store.enums import CallOutcome, DecisionStatus
from reautod.store.records import (
    AgentDecisionRecord,
    AgentTransitionRecord,
    CallEnded,
    CallOutcomeDecided,
    PlaybookAssigned,
    ScoreUpdate,
    from_wire,
    to_wire,
)
from reautod.store.repositories import (
    AgentTransitionRepository,
    AppointmentRepository,
    CallRepository,
    ContactRepository,
    DncRepository,
    ExperimentRepository,
    LeadRepository,
    LeadScoreRepository,
)
from tests.dialogue.fakes import NOW, lead
from tests.store.factories import call_started, campaign_contact_lead


async def test_agent_records_land_in_their_tables(db: Database) -> None:
    campaign, contact, row = await campaign_contact_lead(db)
    calls = CallRepository(db)
    start = call_started(campaign, contact, row, at=NOW)
    call = start.call_id
    decision = AgentDecisionRecord(uuid.uuid4(), call, 0, "scheduler", "book_appointment",
                                   DecisionStatus.PROPOSED, NOW, {"start_utc": "x"},
                                   {"text": "tuesday at three", "intents": ["time"]})
    records = [
        start,
        PlaybookAssigned(call, "real-estate-sellers", "v1@abc", "warm-open"),
        AgentTransitionRecord(uuid.uuid4(), call, 0, "greeter", NOW),
        AgentTransitionRecord(uuid.uuid4(), call, 1, "qualifier", NOW, "greeter", "intent=affirm"),
        ScoreUpdate(uuid.uuid4(), 40, NOW, call_id=call, lead_id=row.id, contact_id=contact.id,
                    factors={"is_owner": {"points": 100}}, reason="40/100 below threshold"),
        ScoreUpdate(uuid.uuid4(), 90, NOW + timedelta(seconds=5), call_id=call, lead_id=row.id,
                    contact_id=contact.id, reason="90/100 qualified"),
        decision,
        CallEnded(call, NOW + timedelta(minutes=3), outcome=CallOutcome.BOOKED),
    ]
    # Through the spool's wire form, as a replay after a database outage would.
    await calls.write([from_wire(to_wire(r)) for r in records])
    await calls.write(records)  # and applied twice: nothing doubles
    stored = await calls.get(call)
    assert (stored.playbook, stored.prompt_version, stored.prompt_variant) == \
        ("real-estate-sellers", "v1@abc", "warm-open")
    [got] = await AgentTransitionRepository(db).decisions(call)
    assert (got.tool, got.status, got.evidence["text"]) == ("book_appointment", "proposed",
                                                            "tuesday at three")
    history = await LeadScoreRepository(db).history(lead_id=row.id)
    assert [h.score for h in history] == [40, 90] and history[0].factors["is_owner"]["points"] == 100
    assert [h.score for h in await LeadScoreRepository(db).history(call_id=call, limit=1)] == [90]
    assert (await LeadRepository(db).get(row.id)).score == 90
    reach = await AgentTransitionRepository(db).stage_reach(campaign.id, NOW - timedelta(days=1))
    assert reach == {"greeter": 1, "qualifier": 1}
    [counts] = await ExperimentRepository(db).variant_counts("real-estate-sellers")
    assert (counts.variant, counts.calls, counts.qualified, counts.booked) == ("warm-open", 1, 1, 1)
    assert await ExperimentRepository(db).variant_counts("real-estate-sellers", "v0@old") == []


async def test_outcome_names_migrate(empty_db: Database) -> None:
    db = empty_db
    await db.upgrade("0003_dialer")
    campaign, contact, row = await campaign_contact_lead(db)
    start = call_started(campaign, contact, row, at=NOW)
    async with db.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO calls (id, direction, transport, status, outcome, created_at) VALUES "
            "(:id, 'outbound', 'twilio', 'completed', 'dnc_request', :at)"),
            {"id": start.call_id.hex if db.backend == "sqlite" else start.call_id, "at": NOW})
    await db.upgrade("head")
    assert (await CallRepository(db).get(start.call_id)).outcome == "opted_out"
    await CallRepository(db).write([CallEnded(start.call_id, NOW, outcome=CallOutcome.WRONG_PERSON)])
    await db.downgrade("0003_dialer")  # wrong_person has no old name: unknown
    async with db.engine.connect() as conn:
        outcome = (await conn.execute(text("SELECT outcome FROM calls"))).scalar_one()
    assert outcome == "unknown"


async def test_store_effects(db: Database) -> None:
    campaign, contact, row = await campaign_contact_lead(db)
    effects = StoreCallEffects(db)
    the_lead = lead(phone=contact.phone_e164, lead_id=row.id, contact_id=contact.id,
                    campaign_id=campaign.id)
    await effects.opt_out(the_lead, reason="asked during greeter")
    entry = await DncRepository(db).find(contact.phone_e164, None)
    assert entry is not None and entry.channel == "agent_tool" and entry.campaign_id is None
    at = datetime(2026, 12, 9, 22, 0, tzinfo=UTC)
    await effects.schedule_callback(the_lead, at, reason="asked")
    updated = await LeadRepository(db).get(row.id)
    assert (updated.status, updated.next_attempt_at) == ("callback", at)
    await effects.update_lead(the_lead, LeadChanges(alt_phone="+13125550199"))
    await effects.update_lead(the_lead, LeadChanges(facts={"timeline": "soon"}))
    custom = (await ContactRepository(db).get(contact.id)).custom
    assert custom == {"alt_phone": "+13125550199", "facts": {"timeline": "soon"}}
    # Callers who are not leads (an inbound stranger): nothing to schedule or update.
    stranger = lead(lead_id=None, contact_id=None)
    await effects.schedule_callback(stranger, at, reason="x")
    await effects.update_lead(stranger, LeadChanges(alt_phone="+13125550100"))


async def test_call_show_reads_the_agents_record(db: Database) -> None:
    campaign, contact, row = await campaign_contact_lead(db)
    start = call_started(campaign, contact, row, at=NOW)
    call = start.call_id
    plain = call_started(campaign, contact, row, at=NOW)
    await CallRepository(db).write([
        start, plain,
        PlaybookAssigned(call, "real-estate-sellers", "v1@abc", "a"),
        AgentTransitionRecord(uuid.uuid4(), call, 0, "greeter", NOW),
        AgentTransitionRecord(uuid.uuid4(), call, 1, "scheduler", NOW, "greeter", "qualified"),
        ScoreUpdate(uuid.uuid4(), 65, NOW, call_id=call, lead_id=row.id, contact_id=contact.id,
                    factors={"is_owner": {"value": "yes", "weight": 30, "points": 100},
                             "price": {"value": None, "weight": 20, "points": 0}},
                    reason="65/100 qualified; is_owner=yes -> 100; price unknown"),
        AgentDecisionRecord(uuid.uuid4(), call, 0, "scheduler", "book_appointment",
                            DecisionStatus.DONE, NOW,
                            {"spoken": "Tuesday, December 15 at 3 PM", "ref": "x"}, {}),
        CallOutcomeDecided(call, CallOutcome.BOOKED, "booked: Tuesday 3 PM", NOW),
        CallEnded(call, NOW + timedelta(minutes=3), outcome=CallOutcome.BOOKED),
    ])
    slot = datetime(2026, 12, 15, 21, 0, tzinfo=UTC)
    booked = await AppointmentRepository(db).book(contact.id, slot, slot + timedelta(minutes=20),
                                                  campaign_id=campaign.id, call_id=call,
                                                  timezone="America/Chicago")
    calls = CallRepository(db)
    assert await agent_record(db, await calls.get(plain.call_id)) is None  # no playbook answered
    record = await agent_record(db, await calls.get(call))
    assert record is not None
    assert (record.playbook, record.version, record.variant, record.outcome, record.score) == \
        ("real-estate-sellers", "v1@abc", "a", "booked", 65)
    assert [(t.from_stage, t.to_stage) for t in record.transitions] == [
        (None, "greeter"), ("greeter", "scheduler")]
    assert [(f.fact, f.value, f.points) for f in record.scores[0].factors] == [
        ("is_owner", "yes", 100), ("price", None, 0)]
    assert record.appointment is not None and record.appointment.id == str(booked.id)
    shown = render_agent(AgentRecord.model_validate(record.model_dump(mode="json")))
    for expected in ("real-estate-sellers v1@abc", "65/100 qualified; is_owner=yes -> 100",
                     "greeter", "scheduler", "book_appointment",
                     "Tuesday, December 15 at 3 PM", "2026-12-15T21:00:00+00:00 UTC"):
        assert expected in shown, shown
