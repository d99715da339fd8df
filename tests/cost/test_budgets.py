"""Budgets with a controlled clock: the cap refuses dials, thresholds fire once, periods roll over
in the budget's zone across DST, a restart rebuilds from the ledger, the stop persists."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from reautod.cost.budgets import BudgetGuard, DialRefusal
from reautod.cost.counters import Counters, MemoryCounters, RedisCounters
from reautod.cost.results import BudgetAlert
from reautod.observability.metrics import Metrics
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.enums import BudgetAlertKind, BudgetPeriod, CostService, CostUnit
from reautod.store.records import CostRecorded
from reautod.store.repositories import AuditRepository, BudgetRepository, CampaignRepository
from reautod.store.repositories.costs import CostRepository
from tests.cost.conftest import Clock

NY = "America/New_York"
DOLLAR = 1_000_000
T0 = datetime(2026, 11, 20, 17, tzinfo=UTC)  # Friday, noon in New York


class Alerts:
    def __init__(self) -> None:
        self.seen: list[BudgetAlert] = []

    def budget_alert(self, alert: BudgetAlert) -> None:
        self.seen.append(alert)

    def kinds(self) -> list[tuple[str, int]]:
        return [(a.kind.value, a.threshold_pct) for a in self.seen]


def guard_for(db: Database, clock: Clock, counters: Counters | None = None,
              alerts: Alerts | None = None) -> BudgetGuard:
    return BudgetGuard(BudgetRepository(db), CostRepository(db), counters or MemoryCounters(),
                       clock=clock, alerts=alerts, forecast_window=timedelta(hours=1))


async def spend(db: Database, guard: BudgetGuard | None, campaign_id: uuid.UUID | None,
                micros: int, at: datetime, tier: str | None = "local") -> None:
    """A ledger row committed (the truth) and counted by the guard (the fast path)."""
    row = CostRecorded(event_id=uuid.uuid4(), service=CostService.TTS, provider="test",
                       unit=CostUnit.REQUESTS, quantity=Decimal(1),
                       unit_price_micros=Decimal(micros), amount_micros=micros, occurred_at=at,
                       campaign_id=campaign_id, tier=tier)

    async def work(conn: Any) -> None:
        await apply_records(conn, [row])

    await db.transaction(work)
    if guard is not None:
        await guard.record([row])


@pytest.fixture
async def campaign(db: Database) -> uuid.UUID:
    return (await CampaignRepository(db).create("spring")).id


async def test_the_cap_makes_the_dial_check_refuse_until_the_period_rolls_over(
        db: Database, campaign: uuid.UUID) -> None:
    clock = Clock(T0)
    guard = guard_for(db, clock)
    await guard.start()
    other = (await CampaignRepository(db).create("autumn")).id
    await guard.set_budget(BudgetPeriod.DAY, 2 * DOLLAR, campaign, timezone=NY, actor="pat")
    assert await guard.check_dial(campaign) is None
    await spend(db, guard, campaign, 1_500_000, clock.now)
    assert await guard.check_dial(campaign) is None
    await spend(db, guard, campaign, 600_000, clock.now)
    refusal = await guard.check_dial(campaign)
    assert isinstance(refusal, DialRefusal)
    assert (refusal.reason, refusal.rule_code, refusal.scope) == ("budget", "budget_cap_day",
                                                                   str(campaign))
    assert refusal.retry_at == datetime(2026, 11, 21, 5, tzinfo=UTC)  # midnight in New York
    assert await guard.check_dial(other) is None  # another campaign's budget is its own
    assert (await guard.premium_allowed(campaign)) == (False, "budget_cap")
    clock.now = datetime(2026, 11, 21, 5, 1, tzinfo=UTC)  # 00:01 the next day in New York
    assert await guard.check_dial(campaign) is None
    # a site-wide budget covers every campaign
    await guard.set_budget(BudgetPeriod.MONTH, DOLLAR, None, timezone="UTC", actor="pat")
    refusal = await guard.check_dial(other)
    assert refusal is not None and refusal.rule_code == "budget_cap_month"
    assert refusal.scope == "global" and refusal.retry_at == datetime(2026, 12, 1, tzinfo=UTC)


async def test_thresholds_alert_once_per_period_even_across_restarts(
        db: Database, campaign: uuid.UUID) -> None:
    clock = Clock(T0)
    alerts = Alerts()
    guard = guard_for(db, clock, alerts=alerts)
    await guard.start()
    await guard.set_budget(BudgetPeriod.DAY, 10 * DOLLAR, campaign, timezone=NY, actor="pat")
    await spend(db, guard, campaign, 4 * DOLLAR, clock.now)
    assert alerts.kinds() == []
    await spend(db, guard, campaign, 1 * DOLLAR, clock.now)  # 50 %
    await spend(db, guard, campaign, 1 * DOLLAR, clock.now)
    assert alerts.kinds() == [("threshold", 50)]
    await spend(db, guard, campaign, 5 * DOLLAR, clock.now)  # 110 %: 80 and 100 at once
    assert alerts.kinds() == [("threshold", 50), ("threshold", 80), ("threshold", 100)]
    assert alerts.seen[-1].spent_micros == 11 * DOLLAR and alerts.seen[-1].period is BudgetPeriod.DAY

    restarted_alerts = Alerts()
    restarted = guard_for(db, clock, alerts=restarted_alerts)  # a new process, same period
    await restarted.start()
    await spend(db, restarted, campaign, DOLLAR, clock.now)
    assert restarted_alerts.kinds() == []

    clock.now = datetime(2026, 11, 21, 15, tzinfo=UTC)  # the next day
    await spend(db, restarted, campaign, 6 * DOLLAR, clock.now)
    assert restarted_alerts.kinds() == [("threshold", 50)]
    stored = await BudgetRepository(db).alerts_since(T0 - timedelta(days=1))
    assert [(a.kind, a.threshold_pct) for a in stored] == [
        ("threshold", 50), ("threshold", 80), ("threshold", 100), ("threshold", 50)]


async def test_the_long_dst_day_is_one_period_in_the_budgets_zone(
        db: Database, campaign: uuid.UUID) -> None:
    clock = Clock(datetime(2026, 11, 1, 4, 30, tzinfo=UTC))  # 00:30 EDT, the 25-hour day
    guard = guard_for(db, clock)
    await guard.start()
    await guard.set_budget(BudgetPeriod.DAY, 5 * DOLLAR, campaign, timezone=NY, actor="pat")
    await spend(db, guard, campaign, 3 * DOLLAR, clock.now)
    clock.now = datetime(2026, 11, 2, 4, 45, tzinfo=UTC)  # 23:45 EST: same local day
    await spend(db, guard, campaign, 3 * DOLLAR, clock.now)
    (state,) = await guard.status()
    assert state.spent_micros == 6 * DOLLAR and state.at_cap
    assert state.period_end is not None and state.period_end - state.period_start == timedelta(hours=25)
    clock.now = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # 00:00 EST: a new day
    (state,) = await guard.status()
    assert state.spent_micros == 0 and not state.at_cap


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_restart_rebuilds_the_counters_from_the_ledger(
        db: Database, campaign: uuid.UUID, backend: str, request: pytest.FixtureRequest) -> None:
    def counters() -> Counters:
        if backend == "memory":
            return MemoryCounters()
        return RedisCounters(request.getfixturevalue("redis_url"),
                             prefix=request.getfixturevalue("redis_prefix"))

    clock = Clock(T0)
    first = guard_for(db, clock, counters())
    await first.start()
    await first.set_budget(BudgetPeriod.WEEK, 20 * DOLLAR, campaign, timezone=NY, actor="pat")
    await first.set_budget(BudgetPeriod.DAY, 20 * DOLLAR, None, timezone="UTC", actor="pat")
    await spend(db, first, campaign, 7 * DOLLAR, clock.now, tier="premium")
    await spend(db, None, campaign, 2 * DOLLAR, clock.now)  # committed, never counted (a crash)
    await spend(db, None, campaign, 9 * DOLLAR, clock.now - timedelta(days=7))  # last week
    await first.counters.close()

    second = guard_for(db, clock, counters())
    await second.start()
    states = {s.period: s for s in await second.status()}
    assert states[BudgetPeriod.WEEK].spent_micros == 9 * DOLLAR  # this week only
    assert states[BudgetPeriod.WEEK].premium_micros == 7 * DOLLAR
    assert states[BudgetPeriod.DAY].spent_micros == 9 * DOLLAR
    await second.counters.close()


async def test_unreachable_counters_fall_back_to_the_ledger(
        db: Database, campaign: uuid.UUID) -> None:
    clock = Clock(T0)
    guard = guard_for(db, clock)
    await guard.start()
    await guard.set_budget(BudgetPeriod.DAY, DOLLAR, campaign, timezone=NY, actor="pat")
    await spend(db, None, campaign, DOLLAR, clock.now)
    guard.counters = RedisCounters("redis://127.0.0.1:1/0", timeout_s=0.2)  # Redis is down
    refusal = await guard.check_dial(campaign)
    assert refusal is not None and refusal.rule_code == "budget_cap_day"
    await guard.tick()  # re-sync fails, logged; the forecast still runs from the ledger
    await guard.counters.close()


async def test_the_emergency_stop_halts_dials_and_premium_and_survives_a_restart(
        db: Database, campaign: uuid.UUID) -> None:
    clock = Clock(T0)
    guard = guard_for(db, clock)
    await guard.start()
    await guard.set_budget(BudgetPeriod.DAY, 100 * DOLLAR, campaign, timezone=NY, actor="pat")
    guard.gauges = metrics = Metrics()
    await guard.stop(actor="pat", reason="invoice dispute")
    assert metrics.spending_stopped._value.get() == 1
    refusal = await guard.check_dial(campaign)
    assert refusal is not None and refusal.rule_code == "spending_stopped"
    assert refusal.retry_at is None and "invoice dispute" in refusal.detail
    assert await guard.check_dial(None) is not None  # no budget needed: everything stops
    assert await guard.premium_allowed(campaign) == (False, "spending_stopped")

    restarted = guard_for(db, clock)
    await restarted.start()
    assert restarted.stopped and await restarted.check_dial(campaign) is not None
    await restarted.resume(actor="sam")
    assert await restarted.check_dial(campaign) is None
    assert await restarted.premium_allowed(campaign) == (True, "ok")
    again = guard_for(db, clock)
    await again.start()
    assert not again.stopped
    audit = [(e.actor, e.action, e.target_id) for e in reversed(await AuditRepository(db).recent())]
    assert audit == [("pat", "budget.set", str(campaign)), ("pat", "budget.stop", "spending"),
                     ("sam", "budget.resume", "spending")]


async def test_the_forecast_switches_premium_off_first_and_alerts_once(
        db: Database, campaign: uuid.UUID) -> None:
    clock = Clock(datetime(2026, 11, 20, 5, tzinfo=UTC))  # midnight in New York
    alerts = Alerts()
    guard = guard_for(db, clock, alerts=alerts)
    guard.gauges = metrics = Metrics()
    await guard.start()
    await guard.set_budget(BudgetPeriod.DAY, 10 * DOLLAR, campaign, timezone=NY, actor="pat")
    # Six hours at $0.20/h local: projected $4.80 for the day, well under the cap.
    for _ in range(6):
        clock.advance(hours=1)
        await spend(db, guard, campaign, 200_000, clock.now - timedelta(minutes=30))
    (state,) = await guard.tick()
    assert state.burn_micros_per_hour == 200_000
    assert state.projected_micros == 1_200_000 + 18 * 200_000
    assert state.premium_allowed and not state.projected_over
    # The last hour adds $0.60 of premium speech: projected $2.00 + 17 h x $0.80/h = $15.60,
    # of which 17 x $0.60 is premium: without it the day would end at $5.40, under the cap.
    clock.advance(hours=1)
    await spend(db, guard, campaign, 200_000, clock.now - timedelta(minutes=1))
    await spend(db, guard, campaign, 600_000, clock.now - timedelta(minutes=1), tier="premium")
    (state,) = await guard.tick()
    assert state.projected_over and state.projected_micros == 2_000_000 + 17 * 800_000
    assert (state.premium_allowed, state.premium_reason) == (False, "premium_overrun")
    assert await guard.premium_allowed(campaign) == (False, "premium_overrun")
    assert await guard.check_dial(campaign) is None  # dials go on with the local voice
    await guard.tick()
    assert [a.kind for a in alerts.seen] == [BudgetAlertKind.FORECAST]
    assert alerts.seen[0].projected_micros == 2_000_000 + 17 * 800_000
    assert metrics.budget_used_ratio.labels(period="day")._value.get() == 0.2
    assert metrics.budget_projected_ratio.labels(period="day")._value.get() == 1.56
    assert metrics.budget_alerts_total.labels(kind="forecast")._value.get() == 1


async def test_budget_repository_validates_and_removes(db: Database, campaign: uuid.UUID) -> None:
    repo = BudgetRepository(db)
    with pytest.raises(Exception, match=">= 0"):
        await repo.set(BudgetPeriod.DAY, -1)
    await repo.set(BudgetPeriod.WEEK, 5, campaign, timezone=NY)
    await repo.remove(BudgetPeriod.WEEK, campaign)
    assert await repo.all() == []
    with pytest.raises(Exception, match="no week budget"):
        await repo.remove(BudgetPeriod.WEEK, campaign)

