"""Typed results of the cost part's control methods and its events (pydantic, shared by the
daemon, `reautoctl`, the TUI and the admin API). Money is integer micro-dollars throughout."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from reautod.cost.meters import CostSnapshot
from reautod.store.enums import BudgetAlertKind, BudgetPeriod


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class BudgetStatus(_Result):
    """One budget now: spend in the current period, the forecast, and what it allows."""

    scope: str  # "global" or the campaign id
    campaign_id: uuid.UUID | None
    campaign: str | None = None  # the campaign's name, filled in for display
    period: BudgetPeriod
    timezone: str
    limit_micros: int
    spent_micros: int
    premium_micros: int
    used_pct: float
    period_start: datetime
    period_end: datetime | None
    burn_micros_per_hour: int | None = None  # over the forecast window
    projected_micros: int | None = None  # at the period's end, at the current burn rate
    projected_over: bool = False
    at_cap: bool
    premium_allowed: bool
    premium_reason: str


class SpendingStopState(_Result):
    stopped: bool
    reason: str | None = None
    actor: str | None = None
    changed_at: datetime | None = None


class BudgetStatusResult(_Result):
    """`budget.status`: the stop, the thresholds, every budget."""

    stop: SpendingStopState
    thresholds_pct: list[int]
    counters: str  # "memory" or "redis"
    budgets: list[BudgetStatus]


class BudgetSetResult(_Result):
    budget: BudgetStatus


class BudgetRemoveResult(_Result):
    scope: str
    period: BudgetPeriod
    removed: bool


class BudgetAlert(_Result):
    """A `budget.alert` event: a threshold or the forecast crossed, once per period."""

    kind: BudgetAlertKind
    scope: str
    campaign_id: uuid.UUID | None
    period: BudgetPeriod
    period_start: datetime
    threshold_pct: int
    spent_micros: int
    projected_micros: int | None
    limit_micros: int
    at: datetime


class CostUpdate(_Result):
    """A `cost.update` event: one live call's cost so far (from `CostTracker.flush`).

    `call_id` is the call's id as the other call events carry it (`call.started`: a simulated
    call's is `sim-...`), so a subscriber finds the call; `ledger_call_id` is its id in the store.
    """

    call_id: str
    ledger_call_id: uuid.UUID
    campaign_id: uuid.UUID | None
    cost_micros: int
    premium_micros: int
    by_service: dict[str, int]
    tts_characters: dict[str, int]
    price_book: str

    @classmethod
    def of(cls, snapshot: CostSnapshot, call_id: str | None = None) -> CostUpdate:
        return cls(call_id=call_id or str(snapshot.call_id), ledger_call_id=snapshot.call_id,
                   campaign_id=snapshot.campaign_id,
                   cost_micros=snapshot.total_micros, premium_micros=snapshot.premium_micros,
                   by_service=snapshot.by_service, tts_characters=snapshot.tts_characters,
                   price_book=snapshot.price_book)
