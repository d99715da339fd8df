"""Budgets enforced: the dial check, the premium switch, threshold and forecast alerts, the stop.

One `BudgetGuard` per daemon. What it is told and when:

- `start()` once: loads budgets and the spending stop from the database and raises every
  counter to the ledger's sum for its current period (the rebuild after a restart).
- `record(rows)` with every batch of ledger rows the meters flush (the same rows the write-behind
  queue commits): adds them to the fast counters and fires threshold alerts.
- `check_dial(campaign_id)` before each dial: None, or a `DialRefusal` (the `budget` dial block).
  Live calls are never touched: the guard only refuses new dials and premium speech.
- `premium_allowed(campaign_id)` when the tier engine decides (never mid-sentence).
- `tick()` every minute or so: burn rates and projections from the ledger, forecast alerts,
  counters re-synced with the ledger (heals a Redis outage), gauges updated.

Alerts fire once per (scope, period window, kind, threshold): the `budget_alerts` row is the
claim, so a restart or a second daemon never fires one twice. If the counters are unreachable
(Redis down), the dial check falls back to the ledger: slower, still true.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from reautod.cost.counters import Counters
from reautod.cost.forecast import Forecast, premium_verdict, project
from reautod.cost.periods import PeriodWindow, window, zone
from reautod.cost.results import BudgetAlert, BudgetStatus, SpendingStopState
from reautod.errors import UnavailableError
from reautod.store.enums import BudgetAlertKind, BudgetPeriod, VoiceTier
from reautod.store.records import CostRecorded
from reautod.store.repositories.budgets import BudgetRepository, BudgetRow, scope_of
from reautod.store.repositories.costs import CostRepository

log = logging.getLogger(__name__)

PERIODIC_TTL_S = 40 * 86400  # longer than a month plus a DST day: expired keys are old windows
PREMIUM = VoiceTier.PREMIUM.value


@dataclass(frozen=True)
class DialRefusal:
    """A dial the budget refused: the dialer records it as a `budget` dial block."""

    reason: Literal["budget"]
    rule_code: str  # "spending_stopped" or "budget_cap_<period>"
    detail: str
    scope: str
    retry_at: datetime | None  # when the period that is full ends (None: after `budget resume`)


class AlertSink(Protocol):
    def budget_alert(self, alert: BudgetAlert) -> None:
        """Publish (event bus, outbox webhook); must not block."""
        ...


class BudgetGauges(Protocol):
    def budget_state(self, period: str, used_ratio: float, projected_ratio: float | None) -> None:
        ...

    def budget_alert(self, kind: str) -> None: ...

    def set_spending_stopped(self, stopped: bool) -> None: ...


class BudgetGuard:
    """See the module docstring."""

    def __init__(self, repo: BudgetRepository, ledger: CostRepository, counters: Counters, *,
                 thresholds_pct: Sequence[int] = (50, 80, 100),
                 forecast_window: timedelta = timedelta(hours=1),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 alerts: AlertSink | None = None, gauges: BudgetGauges | None = None) -> None:
        self.repo = repo
        self.ledger = ledger
        self.counters = counters
        self.thresholds_pct = sorted(set(thresholds_pct))
        self.forecast_window = forecast_window
        self.clock = clock
        self.alerts = alerts
        self.gauges = gauges
        self._budgets: list[BudgetRow] = []
        self._stop = SpendingStopState(stopped=False)
        self._forecasts: dict[tuple[str, str], tuple[str, Forecast]] = {}  # by budget, window
        self._fired: set[tuple[str, str, str, str, int]] = set()

    # --- lifecycle ---

    async def start(self) -> None:
        await self.reload()
        row = await self.repo.stop_state()
        if row is not None:
            self._stop = SpendingStopState(stopped=row.stopped, reason=row.reason,
                                           actor=row.actor, changed_at=row.changed_at)
        if self.gauges is not None:
            self.gauges.set_spending_stopped(self._stop.stopped)
        await self.rebuild()

    async def reload(self) -> None:
        """Re-read the budgets (after `budget set`, or another daemon's change)."""
        self._budgets = await self.repo.all()

    async def rebuild(self) -> None:
        """Raise every current counter to the ledger's sum (start-up, and each tick)."""
        now = self.clock()
        for budget in self._budgets:
            w = self._window(budget, now)
            for tier, key in ((None, self._key(budget, w)), (PREMIUM, self._key(budget, w, PREMIUM))):
                spent = await self.ledger.spent_between(w.start, w.end, budget.campaign_id, tier=tier)
                await self.counters.raise_to(key, spent, _ttl(w))

    # --- spend ---

    async def record(self, rows: Sequence[CostRecorded]) -> None:
        """Count ledger rows against every budget they fall under; fire threshold alerts."""
        increments: dict[bool, dict[str, int]] = {True: {}, False: {}}  # by "never expires"
        touched: dict[str, tuple[BudgetRow, PeriodWindow]] = {}
        for row in rows:
            if row.amount_micros == 0:
                continue
            for budget in self._applicable(row.campaign_id):
                w = self._window(budget, row.occurred_at)
                bucket = increments[w.end is None]
                keys = [self._key(budget, w)] + ([self._key(budget, w, PREMIUM)]
                                                 if row.tier == PREMIUM else [])
                for key in keys:
                    bucket[key] = bucket.get(key, 0) + row.amount_micros
                touched[self._key(budget, w)] = (budget, w)
        values: dict[str, int] = {}
        for never_expires, bucket in increments.items():
            if bucket:
                values |= await self.counters.add(bucket, 0 if never_expires else PERIODIC_TTL_S)
        for key, (budget, w) in touched.items():
            await self._check_thresholds(budget, w, values[key])

    async def _check_thresholds(self, budget: BudgetRow, w: PeriodWindow, spent: int) -> None:
        for pct in self.thresholds_pct:
            if spent * 100 >= pct * budget.limit_micros:
                await self._fire(BudgetAlertKind.THRESHOLD, budget, w, pct, spent, None)

    async def _fire(self, kind: BudgetAlertKind, budget: BudgetRow, w: PeriodWindow, pct: int,
                    spent: int, projected: int | None) -> None:
        memo = (kind.value, budget.scope, budget.period, w.key, pct)
        if memo in self._fired:
            return
        at = self.clock()
        claimed = await self.repo.claim_alert(budget.scope, BudgetPeriod(budget.period), w.start,
                                              kind, pct, spent, budget.limit_micros, at)
        self._fired.add(memo)
        if not claimed:
            return
        alert = BudgetAlert(kind=kind, scope=budget.scope, campaign_id=budget.campaign_id,
                            period=BudgetPeriod(budget.period), period_start=w.start,
                            threshold_pct=pct, spent_micros=spent, projected_micros=projected,
                            limit_micros=budget.limit_micros, at=at)
        log.warning("budget alert: %s %s budget of %s at %d%% (%d of %d micro-dollars%s)",
                    budget.period, kind.value, budget.scope, pct, spent, budget.limit_micros,
                    "" if projected is None else f", projected {projected}")
        if self.alerts is not None:
            self.alerts.budget_alert(alert)
        if self.gauges is not None:
            self.gauges.budget_alert(kind.value)

    # --- decisions ---

    @property
    def stopped(self) -> bool:
        return self._stop.stopped

    async def check_dial(self, campaign_id: uuid.UUID | None) -> DialRefusal | None:
        """None if a new call may be placed now, else why not (checked right before each dial)."""
        if self._stop.stopped:
            return DialRefusal("budget", "spending_stopped",
                               f"spending stopped by {self._stop.actor}: "
                               f"{self._stop.reason or 'no reason given'}", "global", None)
        now = self.clock()
        for budget in self._applicable(campaign_id):
            w = self._window(budget, now)
            spent = await self._spent(budget, w)
            if spent >= budget.limit_micros:
                return DialRefusal(
                    "budget", f"budget_cap_{budget.period}",
                    f"{budget.period} budget of {budget.scope} is spent "
                    f"({spent} of {budget.limit_micros} micro-dollars)", budget.scope, w.end)
        return None

    async def premium_allowed(self, campaign_id: uuid.UUID | None) -> tuple[bool, str]:
        """Whether the premium voice may be chosen now, and why not."""
        now = self.clock()
        if self._stop.stopped:
            return False, premium_verdict(stopped=True, spent_micros=0, limit_micros=0,
                                          forecast=None)[1]
        for budget in self._applicable(campaign_id):
            w = self._window(budget, now)
            allowed, reason = premium_verdict(stopped=False, spent_micros=await self._spent(budget, w),
                                              limit_micros=budget.limit_micros,
                                              forecast=self._forecast(budget, w))
            if not allowed:
                return False, reason
        return True, "ok"

    async def _spent(self, budget: BudgetRow, w: PeriodWindow, tier: str | None = None) -> int:
        try:
            (value,) = await self.counters.get([self._key(budget, w, tier)])
            return value
        except UnavailableError as err:
            log.warning("budget counters unavailable, reading the ledger: %s", err.message)
            return await self.ledger.spent_between(w.start, w.end, budget.campaign_id, tier=tier)

    # --- forecast ---

    async def tick(self) -> list[BudgetStatus]:
        """Forecast every budget from the ledger, fire forecast alerts, re-sync the counters."""
        await self.reload()
        try:
            await self.rebuild()
        except UnavailableError as err:
            log.warning("budget counters not re-synced: %s", err.message)
        now = self.clock()
        for budget in self._budgets:
            w = self._window(budget, now)
            if w.end is None:
                continue
            window_start = max(w.start, now - self.forecast_window)
            recent = await self.ledger.spent_between(window_start, now, budget.campaign_id)
            recent_premium = await self.ledger.spent_between(window_start, now, budget.campaign_id,
                                                             tier=PREMIUM)
            spent = await self._spent(budget, w)
            forecast = project(spent_micros=spent, recent_micros=recent,
                               recent_premium_micros=recent_premium,
                               window_s=(now - window_start).total_seconds(),
                               remaining_s=(w.end - now).total_seconds())
            if forecast is None:
                continue
            self._forecasts[(budget.scope, budget.period)] = (w.key, forecast)
            if forecast.projected_micros > budget.limit_micros:
                await self._fire(BudgetAlertKind.FORECAST, budget, w, 100, spent,
                                 forecast.projected_micros)
        states = await self.status()
        if self.gauges is not None:
            for period in BudgetPeriod:
                mine = [s for s in states if s.period is period and s.limit_micros > 0]
                if mine:
                    projected = [s.projected_micros / s.limit_micros for s in mine
                                 if s.projected_micros is not None]
                    self.gauges.budget_state(period.value,
                                             max(s.spent_micros / s.limit_micros for s in mine),
                                             max(projected) if projected else None)
        return states

    def _forecast(self, budget: BudgetRow, w: PeriodWindow) -> Forecast | None:
        cached = self._forecasts.get((budget.scope, budget.period))
        return cached[1] if cached is not None and cached[0] == w.key else None

    # --- status and operator changes ---

    def stop_state(self) -> SpendingStopState:
        return self._stop

    async def status(self, campaign_id: uuid.UUID | None = None) -> list[BudgetStatus]:
        now = self.clock()
        out = []
        for budget in self._budgets:
            if campaign_id is not None and budget.campaign_id not in (None, campaign_id):
                continue
            out.append(await self.budget_status(budget, now))
        return out

    async def budget_status(self, budget: BudgetRow, now: datetime) -> BudgetStatus:
        w = self._window(budget, now)
        spent = await self._spent(budget, w)
        forecast = self._forecast(budget, w)
        allowed, reason = premium_verdict(stopped=self._stop.stopped, spent_micros=spent,
                                          limit_micros=budget.limit_micros, forecast=forecast)
        limit = budget.limit_micros
        return BudgetStatus(
            scope=budget.scope, campaign_id=budget.campaign_id, period=BudgetPeriod(budget.period),
            timezone=budget.timezone, limit_micros=limit, spent_micros=spent,
            premium_micros=await self._spent(budget, w, PREMIUM),
            used_pct=round(100 * spent / limit, 1) if limit else 100.0,
            period_start=w.start, period_end=w.end,
            burn_micros_per_hour=forecast.burn_micros_per_hour if forecast else None,
            projected_micros=forecast.projected_micros if forecast else None,
            projected_over=bool(forecast and forecast.projected_micros > limit),
            at_cap=spent >= limit, premium_allowed=allowed, premium_reason=reason,
        )

    async def set_budget(self, period: BudgetPeriod, limit_micros: int,
                         campaign_id: uuid.UUID | None, *, timezone: str, actor: str
                         ) -> BudgetStatus:
        zone(timezone)  # validate before anything is written
        row = await self.repo.set(period, limit_micros, campaign_id, timezone=timezone, actor=actor)
        await self.reload()
        await self.rebuild()
        return await self.budget_status(row, self.clock())

    async def remove_budget(self, period: BudgetPeriod, campaign_id: uuid.UUID | None, *,
                            actor: str) -> None:
        await self.repo.remove(period, campaign_id, actor=actor)
        await self.reload()

    async def stop(self, *, actor: str, reason: str | None) -> SpendingStopState:
        """The emergency stop: no dials, no premium speech, until `resume`; persisted, audited."""
        return await self._set_stop(True, actor, reason)

    async def resume(self, *, actor: str) -> SpendingStopState:
        return await self._set_stop(False, actor, None)

    async def _set_stop(self, stopped: bool, actor: str, reason: str | None) -> SpendingStopState:
        row = await self.repo.set_stop(stopped, actor=actor, reason=reason)
        self._stop = SpendingStopState(stopped=row.stopped, reason=row.reason, actor=row.actor,
                                       changed_at=row.changed_at)
        log.warning("spending %s by %s", "stopped" if stopped else "resumed", actor)
        if self.gauges is not None:
            self.gauges.set_spending_stopped(stopped)
        return self._stop

    # --- helpers ---

    def _applicable(self, campaign_id: uuid.UUID | None) -> list[BudgetRow]:
        return [b for b in self._budgets if b.campaign_id is None or b.campaign_id == campaign_id]

    @staticmethod
    def _window(budget: BudgetRow, at: datetime) -> PeriodWindow:
        return window(BudgetPeriod(budget.period), zone(budget.timezone), at)

    @staticmethod
    def _key(budget: BudgetRow, w: PeriodWindow, tier: str | None = None) -> str:
        return f"{scope_of(budget.campaign_id)}:{budget.period}:{budget.timezone}:{w.key}:" + (
            tier or "all")


def _ttl(w: PeriodWindow) -> int:
    return 0 if w.end is None else PERIODIC_TTL_S
