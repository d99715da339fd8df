"""Repositories on both backends: idempotent upserts, status rules, erasure, DNC, costs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import (
    AmdResult,
    CallOutcome,
    CallStatus,
    ConsentStatus,
    CostService,
    CostUnit,
    DncSource,
    LeadStatus,
    RecordingDirection,
    RecordingFormat,
)
from reautod.store.records import (
    AgentTransitionRecord,
    CallEnded,
    CallStatusChanged,
    CostRecorded,
    Record,
    RecordingFinalized,
    ScoreUpdate,
)
from reautod.store.repositories import (
    CallRepository,
    CampaignRepository,
    ContactInput,
    ContactRepository,
    CostRepository,
    DncRepository,
    LeadRepository,
)
from tests.store.factories import T0, call_started, campaign_contact_lead, turn


async def _count(db: Database, model: type[m.Base]) -> int:
    async def work(conn: object) -> int:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())  # type: ignore[attr-defined]

    return await db.read(work)


async def test_campaign_create_is_idempotent_by_name(db: Database) -> None:
    repo = CampaignRepository(db)
    first = await repo.create("solar-q4", budget_micros=50_000_000)
    again = await repo.create("solar-q4", budget_micros=1)
    assert again == first
    assert (await repo.find("solar-q4")).id == first.id
    assert (await repo.find(str(first.id))).name == "solar-q4"
    with pytest.raises(NotFoundError):
        await repo.find("nope")
    with pytest.raises(ValidationError):
        await repo.create("  ")


async def test_contact_upsert_updates_only_given_fields(db: Database) -> None:
    repo = ContactRepository(db)
    created = await repo.upsert(ContactInput("+15550001234", name="Ana", timezone="America/Denver"))
    updated = await repo.upsert(
        ContactInput("+15550001234", consent_status=ConsentStatus.GRANTED, custom={"roof": "south"})
    )
    assert updated.id == created.id
    assert (updated.name, updated.timezone) == ("Ana", "America/Denver")
    assert updated.consent_status == "granted" and updated.custom == {"roof": "south"}
    assert updated.created_at.tzinfo is not None
    with pytest.raises(ValidationError, match=r"E\.164"):
        await repo.upsert(ContactInput("555-1234"))


async def test_replayed_call_records_change_nothing(db: Database) -> None:
    campaign, contact, lead = await campaign_contact_lead(db)
    calls = CallRepository(db)
    start = call_started(campaign, contact, lead, call_sid="CA" + "a" * 32)
    records: list[Record] = [
        start,
        CallStatusChanged(
            start.call_id, CallStatus.RINGING, T0 + timedelta(seconds=2), "twilio", 2
        ),
        CallStatusChanged(
            start.call_id, CallStatus.IN_PROGRESS, T0 + timedelta(seconds=5), "twilio", 3
        ),
        turn(start.call_id, 0),
        turn(start.call_id, 1),
        AgentTransitionRecord(
            uuid.uuid4(), start.call_id, 0, "qualifier", T0, from_agent="greeter"
        ),
        ScoreUpdate(
            uuid.uuid4(), 72, T0, call_id=start.call_id, contact_id=contact.id, lead_id=lead.id
        ),
        CostRecorded(
            uuid.uuid4(),
            CostService.TELEPHONY,
            "twilio",
            CostUnit.MINUTES,
            Decimal("1.5"),
            Decimal("14000"),
            21_000,
            T0,
            call_id=start.call_id,
            campaign_id=campaign.id,
        ),
        CallEnded(
            start.call_id,
            T0 + timedelta(minutes=2),
            CallStatus.COMPLETED,
            outcome=CallOutcome.QUALIFIED,
            amd_result=AmdResult.HUMAN,
            duration_ms=115_000,
        ),
    ]
    await calls.write(records)
    before = await calls.get(start.call_id)
    counts = [
        await _count(db, t)
        for t in (m.Turn, m.CallEvent, m.AgentTransition, m.LeadScore, m.CostEvent)
    ]
    await calls.write(records)  # a replay
    await calls.write(records[:3])  # late, out-of-order webhooks
    after = await calls.get(start.call_id)
    assert after == before
    assert [
        await _count(db, t)
        for t in (m.Turn, m.CallEvent, m.AgentTransition, m.LeadScore, m.CostEvent)
    ] == counts
    assert after.status == "completed" and after.outcome == "qualified"
    assert after.answered_at == T0 + timedelta(seconds=5)
    assert [e.status for e in await calls.timeline(start.call_id)] == [
        "initiated",
        "ringing",
        "in_progress",
        "completed",
    ]
    assert [t.seq for t in await calls.turns(start.call_id)] == [0, 1]
    assert (await LeadRepository(db).get(lead.id)).score == 72
    assert (await calls.transitions(start.call_id))[0].to_agent == "qualifier"


async def test_status_by_sid_never_moves_backwards(db: Database) -> None:
    calls = CallRepository(db)
    start = call_started(call_sid="CA" + "b" * 32)
    await calls.write([start])
    sid = "CA" + "b" * 32
    await calls.record_status_by_sid(sid, CallStatus.COMPLETED, T0 + timedelta(seconds=30))
    row = await calls.record_status_by_sid(sid, CallStatus.RINGING, T0 + timedelta(seconds=1))
    assert row.status == "completed"
    assert {e.status for e in await calls.timeline(start.call_id)} == {
        "initiated",
        "ringing",
        "completed",
    }
    with pytest.raises(NotFoundError):
        await calls.record_status_by_sid("CA" + "c" * 32, CallStatus.RINGING, T0)


async def test_due_leads(db: Database) -> None:
    campaign, _contact, lead = await campaign_contact_lead(db)
    other = await ContactRepository(db).upsert(ContactInput("+15550002222"))
    later = await LeadRepository(db).add(
        campaign.id, other.id, next_attempt_at=T0 + timedelta(hours=1)
    )
    leads = LeadRepository(db)
    assert [lead_row.id for lead_row in await leads.due(campaign.id, T0)] == [lead.id]
    assert [x.id for x in await leads.due(campaign.id, T0 + timedelta(hours=2))] == [
        lead.id,
        later.id,
    ]
    await leads.set_status(later.id, LeadStatus.DIALING)
    await leads.set_status(lead.id, LeadStatus.RETRY, next_attempt_at=T0 + timedelta(days=1))
    assert await leads.due(campaign.id, T0 + timedelta(hours=2)) == []
    assert [x.id for x in await leads.due(campaign.id, T0 + timedelta(days=2))] == [lead.id]
    with pytest.raises(ValidationError):
        await leads.due(campaign.id, T0, limit=0)


async def test_erasing_a_contact_is_complete(db: Database) -> None:
    campaign, contact, lead = await campaign_contact_lead(db)
    start = call_started(campaign, contact, lead, call_sid="CA" + "d" * 32)
    cost_id = uuid.uuid4()
    seeded: list[Record] = [
        start,
        turn(start.call_id, 0),
        ScoreUpdate(
            uuid.uuid4(), 40, T0, call_id=start.call_id, contact_id=contact.id, lead_id=lead.id
        ),
        RecordingFinalized(
            uuid.uuid4(),
            start.call_id,
            RecordingDirection.INBOUND,
            "/r/in.wav",
            RecordingFormat.WAV,
            8000,
            1,
            1000,
            16_044,
            "0" * 64,
            T0,
        ),
        CostRecorded(
            cost_id,
            CostService.LLM,
            "llama.cpp",
            CostUnit.TOKENS,
            Decimal(300),
            Decimal("0.1"),
            30,
            T0,
            call_id=start.call_id,
            campaign_id=campaign.id,
        ),
    ]
    await CallRepository(db).write(seeded)
    await DncRepository(db).add(contact.phone_e164, DncSource.REQUEST)
    paths = await ContactRepository(db).erase(contact.id)
    assert paths == ["/r/in.wav"]
    for model in (m.Contact, m.Lead, m.Call, m.Turn, m.CallEvent, m.LeadScore, m.Recording):
        assert await _count(db, model) == 0, model.__tablename__
    # What survives on purpose: the money (unlinked) and the suppression.
    assert await _count(db, m.CostEvent) == 1
    assert await DncRepository(db).contains(contact.phone_e164)
    with pytest.raises(NotFoundError):
        await ContactRepository(db).erase(contact.id)


async def test_dnc_entries_expire_and_flag_contacts(db: Database) -> None:
    dnc = DncRepository(db)
    contact = await ContactRepository(db).upsert(ContactInput("+15550003333"))
    await dnc.add("+15550003333", DncSource.IMPORT, expires_at=T0 + timedelta(days=30))
    await dnc.add("+15550003333", DncSource.IMPORT)  # idempotent
    assert (await ContactRepository(db).get(contact.id)).dnc
    assert await dnc.contains("+15550003333", T0)
    assert not await dnc.contains("+15550003333", T0 + timedelta(days=31))
    assert await dnc.remove("+15550003333")
    assert not (await ContactRepository(db).get(contact.id)).dnc


async def test_daily_costs_by_campaign(db: Database) -> None:
    campaign, _, _ = await campaign_contact_lead(db)
    day2 = T0 + timedelta(days=1)
    records: list[Record] = [
        CostRecorded(
            uuid.uuid4(),
            CostService.TTS,
            "piper",
            CostUnit.CHARACTERS,
            Decimal(100),
            Decimal(1),
            amount,
            at,
            campaign_id=campaign.id,
        )
        for amount, at in ((100, T0), (250, T0 + timedelta(hours=2)), (7, day2))
    ]
    await CallRepository(db).write(records)
    costs = CostRepository(db)
    daily = await costs.daily(T0 - timedelta(days=1), campaign.id)
    assert [(d.day, d.amount_micros, d.events) for d in daily] == [
        ("2026-11-20", 350, 2),
        ("2026-11-21", 7, 1),
    ]
    assert await costs.spent_since(day2.replace(hour=0), campaign.id) == 7
    with pytest.raises(ValidationError):
        await costs.daily(datetime(2026, 1, 1))  # naive


def test_records_validate_their_input() -> None:
    with pytest.raises(ValidationError):
        ScoreUpdate(uuid.uuid4(), 101, T0)
    with pytest.raises(ValidationError):
        CallEnded(uuid.uuid4(), T0, CallStatus.RINGING)
    with pytest.raises(ValidationError):
        turn(uuid.uuid4(), 0, at=datetime(2026, 1, 1))  # naive
    assert T0.tzinfo is UTC
