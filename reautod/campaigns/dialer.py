"""The dialer: claim due leads, check erasure, DNC and the calling window right before each dial,
pace.

One `Dialer` per daemon. The daemon calls `tick(campaign, now, monotonic)` on a timer for each
running campaign, `heartbeat(now)` more often than the lease TTL, and `call_ended(...)` when a
call it placed is over. Every lead that is claimed but not dialed is released with the reason,
and every blocked dial is reported to `DialLog` with the rule that blocked it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from reautod.campaigns.dnc import DncList
from reautod.campaigns.lead_queue import LeadClaim, LeadQueue
from reautod.campaigns.pacing import ConcurrencyLimiter, Outcome, RetryPolicy, TokenBucket
from reautod.campaigns.windows import CallingWindows, CampaignWindow
from reautod.errors import ReautodError
from reautod.store.enums import LeadStatus

log = logging.getLogger(__name__)


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


class BlockReason(StrEnum):
    DNC = "dnc"
    ERASED = "erased"  # the person asked for erasure: never dialed again
    WINDOW = "window"
    NO_TIMEZONE = "no_timezone"
    NO_CONTACT = "no_contact"
    PLACE_FAILED = "place_failed"
    PACING = "pacing"


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


class ErasedNumbers(Protocol):
    """Numbers erased on their subject's request (security.subjects.ErasureRegister)."""

    async def is_erased(self, phone_e164: str) -> bool: ...

    async def erased_among(self, phones: Iterable[str]) -> set[str]: ...


@dataclass
class TickReport:
    claimed: int = 0
    dialed: int = 0
    blocked: list[BlockedDial] = field(default_factory=list)
    reaped: int = 0


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
        erased: ErasedNumbers | None = None,
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
        self.erased = erased
        self.in_flight: dict[uuid.UUID, LeadClaim] = {}

    async def tick(self, plan: CampaignPlan, now: datetime, monotonic: float) -> TickReport:
        """One dialing round for a campaign."""
        report = TickReport()
        report.reaped = await self.queue.reap_expired(now, now + self.requeue_after)
        campaign = str(plan.campaign_id)
        free = min(self.limiter.per_box - self.limiter.active,
                   plan.max_concurrent - self.limiter.active_for(campaign),
                   self.bucket.available(monotonic))
        if free <= 0:
            return report
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

    async def _try_dial(self, plan: CampaignPlan, claim: LeadClaim, now: datetime,
                        monotonic: float) -> BlockedDial | None:
        target = await self.directory.target(claim)
        if target is None:
            return await self._block(claim, LeadStatus.FAILED, None, BlockReason.NO_CONTACT,
                                     "no_contact", "the lead's contact is gone", "", now)
        if target.timezone is None:
            return await self._block(claim, LeadStatus.FAILED, None, BlockReason.NO_TIMEZONE,
                                     "no_timezone", "no time zone: the window cannot be checked",
                                     "", now)
        if self.erased is not None and await self.erased.is_erased(target.phone):
            return await self._block(claim, LeadStatus.DNC, None, BlockReason.ERASED, "erased",
                                     "the person asked for erasure of their data", "privacy",
                                     now)
        suppressed = await self.dnc.check(target.phone, str(plan.campaign_id))
        if suppressed.suppressed and suppressed.entry is not None:
            return await self._block(claim, LeadStatus.DNC, None, BlockReason.DNC,
                                     f"dnc_{suppressed.entry.scope}",
                                     f"on the {suppressed.entry.scope} do-not-call list",
                                     str(suppressed.entry.source), now)
        recent = await self.directory.attempt_times(claim.lead_id, now - timedelta(hours=24))
        decision = self.windows.evaluate(target.timezone, target.state, now, plan.window, recent)
        if not decision.allowed and decision.blocking_rule is not None:
            rule = decision.blocking_rule
            retry_at = decision.next_allowed_at or now + timedelta(days=1)
            return await self._block(claim, LeadStatus.RETRY, retry_at, BlockReason.WINDOW,
                                     rule.code, rule.detail, rule.source, now)
        campaign = str(plan.campaign_id)
        # Slots were counted before claiming, but other campaigns' ticks may have taken them
        # since (this method awaits); then the lead goes back, due at once.
        if not self.limiter.try_acquire(campaign, plan.max_concurrent):
            return await self._block(claim, LeadStatus.RETRY, now, BlockReason.PACING,
                                     "concurrency", "no free call slot", "pacing", now)
        if not self.bucket.try_take(monotonic):
            self.limiter.release(campaign)
            return await self._block(claim, LeadStatus.RETRY, now, BlockReason.PACING,
                                     "calls_per_second", "calls-per-second cap", "pacing", now)
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
        """Release the lead after its call: retry per the policy, or a final status."""
        claim = self.in_flight.pop(lead_id, None)
        if claim is None:
            return None
        self.limiter.release(str(plan.campaign_id))
        if final_status is not None:
            await self.queue.release(claim, final_status, now)
            return final_status
        times = await self.directory.attempt_times(lead_id, now - timedelta(days=30))
        decision = plan.retry.next_attempt(outcome, times or [now], now)
        if decision.retry and decision.not_before is not None:
            await self.queue.release(claim, LeadStatus.RETRY, now, decision.not_before)
            return LeadStatus.RETRY
        await self.queue.release(claim, LeadStatus.EXHAUSTED, now)
        return LeadStatus.EXHAUSTED

    async def _block(self, claim: LeadClaim, status: LeadStatus, retry_at: datetime | None,
                     reason: BlockReason, code: str, detail: str, source: str,
                     now: datetime) -> BlockedDial:
        await self.queue.release(claim, status, now, retry_at)
        log.info("lead %s not dialed: %s (%s)", claim.lead_id, code, detail)
        return BlockedDial(claim.lead_id, claim.campaign_id, reason, code, detail, source,
                           retry_at)
