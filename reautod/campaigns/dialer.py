"""The dialer: claim due leads, check erasure, DNC and the calling window right before each dial,
pace.

One `Dialer` per daemon. The daemon calls `tick(campaign, now, monotonic)` on a timer for each
running campaign, `heartbeat(now)` more often than the lease TTL, and `call_ended(...)` when a
call it placed is over. Every lead that is claimed but not dialed is released with the reason,
and every blocked dial is reported to `DialLog` with the rule that blocked it.

A campaign whose budget refuses (`BudgetCheck`) claims no leads at all: one lead is claimed and
handed back, due at once, to record the `budget` block when the refusal starts or changes rule,
and again every `BUDGET_BLOCK_EVERY` while it lasts, so the block is visible without a row per
tick.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from reautod.campaigns.dnc import DncList
from reautod.campaigns.lead_queue import LeadClaim, LeadQueue
from reautod.campaigns.pacing import ConcurrencyLimiter, Outcome, RetryPolicy, TokenBucket
from reautod.campaigns.windows import CallingWindows, CampaignWindow
from reautod.errors import ReautodError
from reautod.resilience.shedding import Pace
from reautod.store.enums import LeadStatus

if TYPE_CHECKING:
    from reautod.campaigns.settings import CampaignSettings

log = logging.getLogger(__name__)

BUDGET_BLOCK_EVERY = timedelta(minutes=10)


@dataclass(frozen=True)
class LeadTarget:
    """Who to call: what the window and DNC checks need."""

    phone: str
    timezone: str | None
    state: str | None
    name: str = ""


@dataclass(frozen=True)
class CampaignPlan:
    """A running campaign's dialing settings."""

    campaign_id: uuid.UUID
    window: CampaignWindow = field(default_factory=CampaignWindow)
    max_concurrent: int = 2
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    error_backoff: timedelta = timedelta(minutes=10)

    @classmethod
    def of(cls, campaign_id: uuid.UUID, settings: CampaignSettings) -> CampaignPlan:
        return cls(campaign_id, settings.window(), settings.max_concurrent,
                   RetryPolicy(daily_cap=settings.daily_attempt_cap))


class BlockReason(StrEnum):
    DNC = "dnc"
    ERASED = "erased"  # the person asked for erasure: never dialed again
    WINDOW = "window"
    NO_TIMEZONE = "no_timezone"
    NO_CONTACT = "no_contact"
    PLACE_FAILED = "place_failed"
    PACING = "pacing"
    BUDGET = "budget"


@dataclass(frozen=True)
class BlockedDial:
    """A claimed lead that was not dialed, and why (persisted by the DialLog)."""

    lead_id: uuid.UUID
    campaign_id: uuid.UUID
    reason: BlockReason
    rule_code: str
    detail: str
    source: str
    retry_at: datetime | None


@dataclass(frozen=True)
class NotAdmitted:
    """Why a dial may not happen now: the same value for a campaign's lead and `reautoctl dial`.

    `lead_status` and `retry_at` say what becomes of a claimed lead (a manual dial just refuses).
    """

    reason: BlockReason
    rule_code: str
    detail: str
    source: str
    lead_status: LeadStatus
    retry_at: datetime | None


RecentAttempts = Callable[[], Awaitable[Sequence[datetime]]]


class LeadDirectory(Protocol):
    async def target(self, claim: LeadClaim) -> LeadTarget | None: ...

    async def attempt_times(self, lead_id: uuid.UUID, since: datetime) -> list[datetime]:
        """Start times of this lead's calls since `since` (for 24-hour caps and retries)."""
        ...


class CallPlacer(Protocol):
    async def place(self, claim: LeadClaim, target: LeadTarget) -> None:
        """Start the call (Twilio create); return once it is placed, not when it ends."""
        ...


class DialLog(Protocol):
    async def blocked(self, entry: BlockedDial) -> None: ...


class BudgetRefusal(Protocol):
    """Why the budget refuses new dials (reautod.cost.budgets.DialRefusal)."""

    @property
    def rule_code(self) -> str: ...

    @property
    def detail(self) -> str: ...

    @property
    def retry_at(self) -> datetime | None:
        """When the full period ends (None: until spending is resumed)."""
        ...


class BudgetCheck(Protocol):
    async def check_dial(self, campaign_id: uuid.UUID | None) -> BudgetRefusal | None:
        """None when a new call may be placed for this campaign now."""
        ...


class ErasedNumbers(Protocol):
    """Numbers erased on their subject's request (security.subjects.ErasureRegister)."""

    async def is_erased(self, phone_e164: str) -> bool: ...

    async def erased_among(self, phones: Iterable[str]) -> set[str]: ...


class LoadPace(Protocol):
    """How many of `wanted` dials the box's load allows now (reautod.resilience.shedding)."""

    def pace(self, wanted: int, active: int) -> Pace: ...


@dataclass
class TickReport:
    claimed: int = 0
    dialed: int = 0
    blocked: list[BlockedDial] = field(default_factory=list)
    reaped: int = 0
    held_back: str | None = None  # why the box's load allowed fewer dials than slots


class Dialer:
    """Decides and places dials for this daemon; the database arbitrates between daemons."""

    def __init__(
        self,
        queue: LeadQueue,
        directory: LeadDirectory,
        placer: CallPlacer,
        dnc: DncList,
        dial_log: DialLog,
        *,
        limiter: ConcurrencyLimiter,
        bucket: TokenBucket,
        windows: CallingWindows | None = None,
        requeue_after: timedelta = timedelta(minutes=15),
        budget: BudgetCheck | None = None,
        erased: ErasedNumbers | None = None,
        load: LoadPace | None = None,
    ) -> None:
        self.queue = queue
        self.directory = directory
        self.placer = placer
        self.dnc = dnc
        self.dial_log = dial_log
        self.limiter = limiter
        self.bucket = bucket
        self.windows = windows or CallingWindows()
        self.requeue_after = requeue_after
        self.budget = budget
        self.erased = erased
        self.load = load  # the box's measured load (reautod.resilience.shedding) paces dials
        self.in_flight: dict[uuid.UUID, LeadClaim] = {}
        self._budget_noted: dict[uuid.UUID, tuple[str, datetime]] = {}  # rule, when recorded

    async def reclaim_previous_run(self, now: datetime) -> int:
        """At start-up: leads an earlier daemon here died dialing go back to the queue."""
        reclaimed = await self.queue.reclaim_previous_run(now, now + self.requeue_after)
        if reclaimed:
            log.info("requeued %d lead(s) a previous run was dialing when it stopped", reclaimed)
        return reclaimed

    async def tick(self, plan: CampaignPlan, now: datetime, monotonic: float) -> TickReport:
        """One dialing round for a campaign."""
        report = TickReport()
        report.reaped = await self.queue.reap_expired(now, now + self.requeue_after)
        campaign = str(plan.campaign_id)
        free = min(self.limiter.per_box - self.limiter.active,
                   plan.max_concurrent - self.limiter.active_for(campaign),
                   self.bucket.available(monotonic))
        if free > 0 and self.load is not None:
            pace = self.load.pace(free, self.limiter.active)
            free, report.held_back = pace.allowed, pace.reason
        if free <= 0:
            return report
        refusal = await self.budget.check_dial(plan.campaign_id) if self.budget else None
        if refusal is not None:
            await self._budget_refused(plan, refusal, now, report)
            return report
        self._budget_noted.pop(plan.campaign_id, None)
        claims = await self.queue.claim(plan.campaign_id, now, free)
        report.claimed = len(claims)
        for claim in claims:
            blocked = await self._try_dial(plan, claim, now, monotonic)
            if blocked is None:
                report.dialed += 1
            else:
                report.blocked.append(blocked)
                await self.dial_log.blocked(blocked)
        return report

    async def admit(self, target: LeadTarget, *, slot: str, campaign_id: uuid.UUID | None,
                    window: CampaignWindow, max_concurrent: int, now: datetime,
                    monotonic: float, recent: RecentAttempts | None = None
                    ) -> NotAdmitted | None:
        """The one gate before every dial (the dialer's leads and `reautoctl dial`): erasure,
        time zone, DNC, calling window, a call slot of `slot`, a calls-per-second token. None:
        admitted, and the caller holds a slot it must `limiter.release(slot)` when the call is
        over. `recent` gives the number's call times of the last 24 h (for per-24 h caps)."""
        if self.erased is not None and await self.erased.is_erased(target.phone):
            return NotAdmitted(BlockReason.ERASED, "erased",
                               "the person asked for erasure of their data", "privacy",
                               LeadStatus.DNC, None)
        if target.timezone is None:
            return NotAdmitted(BlockReason.NO_TIMEZONE, "no_timezone",
                               "no time zone: the window cannot be checked", "",
                               LeadStatus.FAILED, None)
        suppressed = await self.dnc.check(target.phone,
                                          str(campaign_id) if campaign_id is not None else None)
        if suppressed.suppressed and suppressed.entry is not None:
            return NotAdmitted(BlockReason.DNC, f"dnc_{suppressed.entry.scope}",
                               f"on the {suppressed.entry.scope} do-not-call list",
                               str(suppressed.entry.source), LeadStatus.DNC, None)
        attempts = list(await recent()) if recent is not None else []
        decision = self.windows.evaluate(target.timezone, target.state, now, window, attempts)
        if not decision.allowed and decision.blocking_rule is not None:
            rule = decision.blocking_rule
            return NotAdmitted(BlockReason.WINDOW, rule.code, rule.detail, rule.source,
                               LeadStatus.RETRY, decision.next_allowed_at or now + timedelta(days=1))
        # Slots were counted before claiming, but other campaigns' ticks may have taken them
        # since (this method awaits); then the lead goes back, due at once.
        if not self.limiter.try_acquire(slot, max_concurrent):
            return NotAdmitted(BlockReason.PACING, "concurrency", "no free call slot", "pacing",
                               LeadStatus.RETRY, now)
        if not self.bucket.try_take(monotonic):
            self.limiter.release(slot)
            return NotAdmitted(BlockReason.PACING, "calls_per_second", "calls-per-second cap",
                               "pacing", LeadStatus.RETRY, now)
        return None

    async def _budget_refused(self, plan: CampaignPlan, refusal: BudgetRefusal, now: datetime,
                              report: TickReport) -> None:
        noted = self._budget_noted.get(plan.campaign_id)
        if noted is not None and noted[0] == refusal.rule_code and (
                now - noted[1] < BUDGET_BLOCK_EVERY):
            return
        for claim in await self.queue.claim(plan.campaign_id, now, 1):
            await self.queue.release(claim, LeadStatus.RETRY, now, now)
            log.info("campaign %s not dialed: %s (%s)", plan.campaign_id, refusal.rule_code,
                     refusal.detail)
            blocked = BlockedDial(claim.lead_id, claim.campaign_id, BlockReason.BUDGET,
                                  refusal.rule_code, refusal.detail, "budget", refusal.retry_at)
            report.claimed += 1
            report.blocked.append(blocked)
            await self.dial_log.blocked(blocked)
            self._budget_noted[plan.campaign_id] = (refusal.rule_code, now)

    async def _try_dial(self, plan: CampaignPlan, claim: LeadClaim, now: datetime,
                        monotonic: float) -> BlockedDial | None:
        target = await self.directory.target(claim)
        if target is None:
            return await self._block(claim, LeadStatus.FAILED, None, BlockReason.NO_CONTACT,
                                     "no_contact", "the lead's contact is gone", "", now)
        campaign = str(plan.campaign_id)

        async def recent() -> list[datetime]:
            return await self.directory.attempt_times(claim.lead_id, now - timedelta(hours=24))

        refused = await self.admit(target, slot=campaign, campaign_id=plan.campaign_id,
                                   window=plan.window, max_concurrent=plan.max_concurrent,
                                   now=now, monotonic=monotonic, recent=recent)
        if refused is not None:
            return await self._block(claim, refused.lead_status, refused.retry_at,
                                     refused.reason, refused.rule_code, refused.detail,
                                     refused.source, now)
        renewed = await self.queue.renew(claim, now, dialed=True)
        if renewed is None:
            self.limiter.release(campaign)
            log.warning("lost the lease on lead %s before dialing; skipped", claim.lead_id)
            return None
        try:
            await self.placer.place(renewed, target)
        except ReautodError as err:
            self.limiter.release(campaign)
            return await self._block(renewed, LeadStatus.RETRY, now + plan.error_backoff,
                                     BlockReason.PLACE_FAILED, err.code, err.message, "", now)
        self.in_flight[renewed.lead_id] = renewed
        return None

    async def heartbeat(self, now: datetime) -> list[uuid.UUID]:
        """Renew the leases of calls in flight; returns the leads whose lease was lost."""
        lost = []
        for lead_id, claim in list(self.in_flight.items()):
            renewed = await self.queue.renew(claim, now)
            if renewed is None:
                lost.append(lead_id)
                self.in_flight.pop(lead_id, None)
                self.limiter.release(str(claim.campaign_id))
            else:
                self.in_flight[lead_id] = renewed
        return lost

    async def call_answered(self, lead_id: uuid.UUID, now: datetime) -> None:
        claim = self.in_flight.get(lead_id)
        if claim is not None:
            renewed = await self.queue.renew(claim, now, in_call=True)
            if renewed is not None:
                self.in_flight[lead_id] = renewed

    async def call_ended(self, plan: CampaignPlan, lead_id: uuid.UUID, outcome: Outcome,
                         final_status: LeadStatus | None, now: datetime) -> LeadStatus | None:
        """Release the lead after its call: retry per the policy, or a final status. None when
        the lead is not ours to release: the conversation settled it during the call (a
        callback at the agreed time, a booking), and the fenced release leaves that alone."""
        claim = self.in_flight.pop(lead_id, None)
        if claim is None:
            return None
        self.limiter.release(str(plan.campaign_id))
        if final_status is not None:
            return final_status if await self.queue.release(claim, final_status, now) else None
        times = await self.directory.attempt_times(lead_id, now - timedelta(days=30))
        decision = plan.retry.next_attempt(outcome, times or [now], now)
        if decision.retry and decision.not_before is not None:
            status, retry_at = LeadStatus.RETRY, decision.not_before
        else:
            status, retry_at = LeadStatus.EXHAUSTED, None
        return status if await self.queue.release(claim, status, now, retry_at) else None

    async def _block(self, claim: LeadClaim, status: LeadStatus, retry_at: datetime | None,
                     reason: BlockReason, code: str, detail: str, source: str,
                     now: datetime) -> BlockedDial:
        await self.queue.release(claim, status, now, retry_at)
        log.info("lead %s not dialed: %s (%s)", claim.lead_id, code, detail)
        return BlockedDial(claim.lead_id, claim.campaign_id, reason, code, detail, source,
                           retry_at)
