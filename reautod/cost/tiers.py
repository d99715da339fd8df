"""The voice tier engine: premium speech only where it pays and the budget allows.

For a call (stage None) or one stage of it, the premium voice is chosen when

    lead score / 100 x deal value x uplift  >  expected characters x premium price per character

and the premium voice is available (enabled, circuit closed, quota left) and every budget the
call falls under allows premium spend (reautod.cost.forecast.premium_verdict). The local voice's
own cost is not subtracted from the premium's marginal cost: it is a few micro-dollars a call and
leaving it out errs towards the cheaper voice. Each decision is kept (tier_decisions) with its
figures and reason. A decision takes effect at the next utterance: the voice never changes in
the middle of a sentence (reautod.engines.tiered enforces that).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from reautod.cost.budgets import BudgetGuard
from reautod.cost.money import to_micros
from reautod.cost.pricebook import PriceBook
from reautod.errors import ValidationError
from reautod.store.enums import VoiceTier
from reautod.store.records import Record, TierDecided

# Reasons stored with each decision.
WORTH_IT = "worth_it"
NOT_WORTH_IT = "not_worth_it"
NO_SCORE = "no_score"
PREMIUM_UNAVAILABLE = "premium_unavailable"


@dataclass(frozen=True)
class PremiumTerms:
    """What premium speech is worth and costs for one campaign."""

    deal_value_micros: int
    uplift: Decimal  # added probability of a deal with the premium voice, 0..1
    expected_characters: int
    plan: str
    model: str

    def __post_init__(self) -> None:
        if self.deal_value_micros < 0 or not Decimal(0) <= self.uplift <= 1:
            raise ValidationError("deal value must be >= 0 and uplift within 0..1")
        if self.expected_characters <= 0:
            raise ValidationError("expected characters must be > 0")


class RecordSink(Protocol):
    def submit(self, record: Record) -> bool: ...


class TierMetrics(Protocol):
    def tier_decided(self, tier: str) -> None: ...


class TierEngine:
    """Decides and records; one per daemon, per-call sequence numbers kept until `forget`."""

    def __init__(self, book_at: Callable[[datetime], PriceBook], guard: BudgetGuard | None,
                 sink: RecordSink, *, premium_available: Callable[[], bool],
                 metrics: TierMetrics | None = None) -> None:
        self.book_at = book_at
        self.guard = guard
        self.sink = sink
        self.premium_available = premium_available
        self.metrics = metrics
        self._seq: dict[uuid.UUID, int] = {}

    async def decide(self, call_id: uuid.UUID, campaign_id: uuid.UUID | None, terms: PremiumTerms,
                     *, lead_score: int | None, now: datetime, stage: str | None = None
                     ) -> TierDecided:
        if lead_score is not None and not 0 <= lead_score <= 100:
            raise ValidationError(f"lead score {lead_score} is outside 0..100")
        price = self.book_at(now).elevenlabs_char(terms.plan, terms.model)
        cost = to_micros(price * terms.expected_characters)
        value = 0 if lead_score is None else to_micros(
            Decimal(lead_score) / 100 * terms.deal_value_micros * terms.uplift)
        if not self.premium_available():
            tier, reason = VoiceTier.LOCAL, PREMIUM_UNAVAILABLE
        elif lead_score is None:
            tier, reason = VoiceTier.LOCAL, NO_SCORE
        elif value <= cost:
            tier, reason = VoiceTier.LOCAL, NOT_WORTH_IT
        else:
            allowed, why = (True, WORTH_IT) if self.guard is None else (
                await self.guard.premium_allowed(campaign_id))
            tier, reason = (VoiceTier.PREMIUM, WORTH_IT) if allowed else (VoiceTier.LOCAL, why)
        seq = self._seq.get(call_id, 0)
        self._seq[call_id] = seq + 1
        decision = TierDecided(decision_id=uuid.uuid5(call_id, f"tier:{seq}"), call_id=call_id,
                               seq=seq, tier=tier, reason=reason, expected_value_micros=value,
                               marginal_cost_micros=cost, at=now, stage=stage,
                               lead_score=lead_score)
        self.sink.submit(decision)
        if self.metrics is not None:
            self.metrics.tier_decided(tier.value)
        return decision

    def forget(self, call_id: uuid.UUID) -> None:
        """The call is over."""
        self._seq.pop(call_id, None)
