"""Control-socket methods of the cost part: budget.status|set|remove|stop|resume.

Each returns a pydantic model from reautod.cost.results. `actor` names who made a change in the
audit log; `reautoctl` sends the operator's login name (the control socket already admits only
permitted peers).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from reautod.cost.budgets import BudgetGuard
from reautod.cost.money import parse_dollars
from reautod.cost.periods import zone
from reautod.cost.results import (
    BudgetRemoveResult,
    BudgetSetResult,
    BudgetStatus,
    BudgetStatusResult,
    SpendingStopState,
)
from reautod.errors import ValidationError
from reautod.methods import Method
from reautod.store.enums import BudgetPeriod
from reautod.store.repositories import CampaignRepository
from reautod.store.repositories.budgets import scope_of

Actor = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w.@:-]+$")]
CampaignRef = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusParams(_Params):
    campaign: CampaignRef | None = None  # name or id; default: every budget


class SetParams(_Params):
    period: BudgetPeriod
    limit: str = Field(min_length=1, max_length=32, description="US dollars, e.g. 50 or 12.50")
    campaign: CampaignRef | None = None  # default: the site-wide budget
    timezone: str | None = None  # default: cost.timezone
    actor: Actor = "operator"


class RemoveParams(_Params):
    period: BudgetPeriod
    campaign: CampaignRef | None = None
    actor: Actor = "operator"


class StopParams(_Params):
    reason: str | None = Field(None, max_length=500)
    actor: Actor = "operator"


class ResumeParams(_Params):
    actor: Actor = "operator"


def budget_methods(guard: BudgetGuard, campaigns: CampaignRepository, *,
                   default_timezone: str) -> list[Method]:
    async def campaign_id(ref: str | None) -> uuid.UUID | None:
        return None if ref is None else (await campaigns.find(ref)).id

    async def named(states: list[BudgetStatus]) -> list[BudgetStatus]:
        names = {c.id: c.name for c in await campaigns.list()}
        return [s.model_copy(update={"campaign": names.get(s.campaign_id)}) if s.campaign_id
                else s for s in states]

    async def status(params: StatusParams) -> BudgetStatusResult:
        states = await guard.status(await campaign_id(params.campaign))
        return BudgetStatusResult(stop=guard.stop_state(), thresholds_pct=guard.thresholds_pct,
                                  counters=guard.counters.backend, budgets=await named(states))

    async def set_budget(params: SetParams) -> BudgetSetResult:
        limit = parse_dollars(params.limit)
        if limit < 0:
            raise ValidationError("a budget limit cannot be negative")
        tz = params.timezone or default_timezone
        zone(tz)
        state = await guard.set_budget(params.period, limit, await campaign_id(params.campaign),
                                       timezone=tz, actor=params.actor)
        return BudgetSetResult(budget=(await named([state]))[0])

    async def remove(params: RemoveParams) -> BudgetRemoveResult:
        cid = await campaign_id(params.campaign)
        await guard.remove_budget(params.period, cid, actor=params.actor)
        return BudgetRemoveResult(scope=scope_of(cid), period=params.period, removed=True)

    async def stop(params: StopParams) -> SpendingStopState:
        return await guard.stop(actor=params.actor, reason=params.reason)

    async def resume(params: ResumeParams) -> SpendingStopState:
        return await guard.resume(actor=params.actor)

    return [
        Method("budget.status", status, StatusParams,
               summary="every budget: spend this period, burn rate, projection, premium voice"),
        Method("budget.set", set_budget, SetParams, changes_state=True,
               summary="set a daily/weekly/monthly/total cap, site-wide or for one campaign"),
        Method("budget.remove", remove, RemoveParams, summary="remove a budget",
               changes_state=True),
        Method("budget.stop", stop, StopParams, changes_state=True,
               summary="emergency stop: no dials and no premium speech until budget.resume"),
        Method("budget.resume", resume, ResumeParams, summary="lift the emergency stop",
               changes_state=True),
    ]
