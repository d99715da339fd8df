"""Cost per call, lead, qualified lead and booking; cost per call by voice tier (a simulated
campaign: calls metered by the CostTracker, written through the ledger into the database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from reautod.cost.ledger import CostLedger
from reautod.cost.pricebook import load_price_books
from reautod.cost.tracker import CostTracker
from reautod.engines.tiered import SpeechUsage
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.enums import CallOutcome, CallStatus, VoiceTier
from reautod.store.records import CallEnded, Record
from reautod.store.repositories import (
    CampaignRepository,
    ContactInput,
    ContactRepository,
    LeadRepository,
)
from reautod.store.repositories.cost_reports import cost_by_tier, cost_per_outcome
from tests.cost.fakes import Collect
from tests.store.factories import call_started

T0 = datetime(2026, 11, 21, 15, tzinfo=UTC)


async def test_a_simulated_campaign_reports_cost_per_outcome_and_per_tier(db: Database) -> None:
    campaign = await CampaignRepository(db).create("spring")
    sink = Collect()
    tracker = CostTracker(load_price_books(), CostLedger(sink), plan="pro",
                          model="eleven_flash_v2_5", clock=lambda: T0)
    # (lead, outcome, seconds, premium characters)
    plan = [(0, CallOutcome.BOOKED, 61, 600), (1, CallOutcome.QUALIFIED, 120, 0),
            (1, CallOutcome.NOT_INTERESTED, 30, 0), (2, CallOutcome.NO_ANSWER, 0, 0)]
    leads = []
    for i in range(3):
        contact = await ContactRepository(db).upsert(ContactInput(f"+1555000100{i}"))
        leads.append(await LeadRepository(db).add(campaign.id, contact.id, next_attempt_at=T0))
    records: list[Record] = []
    for n, (lead_no, outcome, seconds, premium) in enumerate(plan):
        lead = leads[lead_no]
        start = call_started(campaign, None, lead, at=T0 + timedelta(minutes=n))
        records.append(start)
        tracker.begin_call(start.call_id, campaign.id)
        call = str(start.call_id)
        if premium:
            tracker.on_speech(SpeechUsage(call, VoiceTier.PREMIUM, premium, 30.0, 0.0))
        if seconds:
            tracker.on_speech(SpeechUsage(call, VoiceTier.LOCAL, 200, 12.0, 0.5))
        assert [snap.call_id for snap in tracker.live()] == [start.call_id]
        tracker.end_call(start.call_id, duration_s=seconds, amd=True)
        records.append(CallEnded(call_id=start.call_id, ended_at=T0 + timedelta(minutes=n, seconds=seconds),
                                 status=CallStatus.COMPLETED if seconds else CallStatus.NO_ANSWER,
                                 outcome=outcome))
    tracker.on_speech(SpeechUsage(str(uuid.uuid4()), VoiceTier.LOCAL, 10, 1.0, 0.1))  # unknown call

    async def work(conn: Any) -> None:
        await apply_records(conn, records + sink.records)

    await db.transaction(work)
    # telephony: (2 + 2 + 1) min x ($0.014 + $0.004) = $0.09; AMD 4 x $0.0075 = $0.03;
    # premium 600 x 50 = $0.03; local TTS 3 x 0.5 s x 41.67 = 63 micros
    report = await cost_per_outcome(db, T0, campaign_id=campaign.id)
    assert report.total_micros == 90_000 + 30_000 + 30_000 + 3 * 21
    assert (report.calls, report.leads, report.qualified_leads, report.bookings) == (4, 3, 2, 1)
    assert report.per_call_micros == round(report.total_micros / 4)
    assert report.per_lead_micros == round(report.total_micros / 3)
    assert report.per_qualified_lead_micros == round(report.total_micros / 2)
    assert report.per_booking_micros == report.total_micros
    tiers = {t.tier: t for t in await cost_by_tier(db, T0, campaign_id=campaign.id)}
    assert tiers["premium"].calls == 1 and tiers["local"].calls == 3
    assert tiers["premium"].total_micros == 2 * 18_000 + 7_500 + 30_000 + 21
    assert tiers["premium"].per_call_micros == tiers["premium"].total_micros
    empty = await cost_per_outcome(db, T0 + timedelta(days=1))
    assert empty.calls == 0 and empty.per_call_micros is None
