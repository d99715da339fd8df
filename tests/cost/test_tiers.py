"""The tier engine's decisions (stored per call with their figures) and the ledger's front door."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from reautod.cost.budgets import BudgetGuard
from reautod.cost.counters import MemoryCounters
from reautod.cost.ledger import CostLedger
from reautod.cost.pricebook import load_price_books
from reautod.cost.tiers import PremiumTerms, TierEngine
from reautod.errors import ValidationError
from reautod.observability.metrics import Metrics
from reautod.store import models as m
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.enums import BudgetPeriod, CostService, CostUnit, VoiceTier
from reautod.store.records import CostRecorded
from reautod.store.repositories import BudgetRepository, CampaignRepository
from reautod.store.repositories.costs import CostRepository
from tests.cost.conftest import Clock
from tests.cost.fakes import Collect
from tests.store.factories import call_started

T0 = datetime(2026, 11, 20, 17, tzinfo=UTC)
BOOKS = load_price_books()
# 1,200 characters x 50 micros = $0.06 marginal cost; deal $500 x 2 % uplift = $10 at score 100
TERMS = PremiumTerms(deal_value_micros=500_000_000, uplift=Decimal("0.02"),
                     expected_characters=1200, plan="pro", model="eleven_flash_v2_5")


async def test_premium_only_where_it_pays_and_the_budget_allows(db: Database) -> None:
    campaign = (await CampaignRepository(db).create("spring")).id
    clock = Clock(T0)
    guard = BudgetGuard(BudgetRepository(db), CostRepository(db), MemoryCounters(), clock=clock)
    await guard.start()
    sink, metrics = Collect(), Metrics()
    available = [True]
    engine = TierEngine(BOOKS.at, guard, sink, premium_available=lambda: available[0],
                        metrics=metrics)
    start = call_started(at=T0)
    call = start.call_id

    async def decide(score: int | None, terms: PremiumTerms = TERMS, stage: str | None = None
                     ) -> tuple[VoiceTier, str, int, int]:
        d = await engine.decide(call, campaign, terms, lead_score=score, now=clock.now,
                                stage=stage)
        return d.tier, d.reason, d.expected_value_micros, d.marginal_cost_micros

    assert await decide(80) == (VoiceTier.PREMIUM, "worth_it", 8_000_000, 60_000)
    assert await decide(None) == (VoiceTier.LOCAL, "no_score", 0, 60_000)
    cheap_deal = PremiumTerms(2_000_000, Decimal("0.02"), 1200, "pro", "eleven_flash_v2_5")
    assert (await decide(100, cheap_deal))[:2] == (VoiceTier.LOCAL, "not_worth_it")  # $0.04 < $0.06
    available[0] = False
    assert (await decide(90))[:2] == (VoiceTier.LOCAL, "premium_unavailable")
    available[0] = True
    await guard.stop(actor="pat", reason="test")
    assert (await decide(90, stage="pitch"))[:2] == (VoiceTier.LOCAL, "spending_stopped")
    await guard.resume(actor="pat")
    await guard.set_budget(BudgetPeriod.DAY, 0, campaign, timezone="UTC", actor="pat")
    assert (await decide(90))[:2] == (VoiceTier.LOCAL, "budget_cap")
    with pytest.raises(ValidationError):
        await decide(101)

    async def work(conn: Any) -> None:
        await apply_records(conn, [start, *sink.records, *sink.records])  # replayed: once

    await db.transaction(work)

    async def rows(conn: Any) -> list[Any]:
        table = m.TierDecision.__table__
        return list(await conn.execute(select(table).order_by(table.c.seq)))  # type: ignore[attr-defined]

    stored = await db.read(rows)
    assert [(r.seq, r.tier, r.reason) for r in stored] == [
        (0, "premium", "worth_it"), (1, "local", "no_score"), (2, "local", "not_worth_it"),
        (3, "local", "premium_unavailable"), (4, "local", "spending_stopped"),
        (5, "local", "budget_cap")]
    assert stored[4].stage == "pitch" and stored[0].lead_score == 80
    assert metrics.tts_tier_decisions_total.labels(tier="premium")._value.get() == 1
    engine.forget(call)
    assert (await engine.decide(call, campaign, TERMS, lead_score=1, now=T0)).seq == 0
    with pytest.raises(ValidationError):
        PremiumTerms(-1, Decimal("0.1"), 10, "pro", "eleven_flash_v2_5")


async def test_the_ledger_feeds_the_write_behind_queue_and_the_budgets(db: Database) -> None:
    campaign = (await CampaignRepository(db).create("spring")).id
    guard = BudgetGuard(BudgetRepository(db), CostRepository(db), MemoryCounters(),
                        clock=lambda: T0)
    await guard.start()
    await guard.set_budget(BudgetPeriod.DAY, 1_000_000, campaign, timezone="UTC", actor="pat")
    sink, metrics = Collect(), Metrics()
    ledger = CostLedger(sink, guard, metrics)
    await ledger.start()
    row = CostRecorded(event_id=uuid.uuid4(), service=CostService.TELEPHONY, provider="twilio",
                       unit=CostUnit.MINUTES, quantity=Decimal(1),
                       unit_price_micros=Decimal(14_000), amount_micros=1_000_000,
                       occurred_at=T0, campaign_id=campaign, tier="outbound")
    ledger.submit([row])
    ledger.submit([])
    await ledger.stop()  # drains the budget queue first
    assert sink.records == [row]
    assert await guard.check_dial(campaign) is not None  # counted: the cap is reached
    assert metrics.cost_by_service_dollars_total.labels(service="telephony")._value.get() == 1.0
    assert ledger.refused == ledger.uncounted == 0
