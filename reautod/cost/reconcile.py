"""After a call: Twilio's reported price against our metered telephony, the difference kept.

Twilio fills in a call's `price` (negative, as a decimal string, with `price_unit`) some time
after the call completes, so the reconciler asks at a few delays (`cost.reconcile_delays_s`)
until it is there. The reconciliation row keeps both figures and their difference (exported as
`reautod_cost_ledger_error_dollars_total`). When Twilio charged more than we metered, an
adjustment row tops up the ledger, so budgets never under-count what was billed; when it charged
less, the ledger keeps our (higher) figure.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from reautod.cost.ledger import CostLedger
from reautod.cost.money import dollars_to_micros, to_micros
from reautod.errors import ReautodError, ValidationError
from reautod.store.enums import CostService, CostUnit
from reautod.store.records import CostRecorded
from reautod.store.repositories.costs import CostRepository, Reconciliation

log = logging.getLogger(__name__)

ADJUSTMENT_PROVIDER = "twilio_adjustment"
_ADJUSTMENT_NAMESPACE = uuid.UUID("0b7f6b86-2f0a-4f1e-9a47-0c3d5b1d9e10")


@dataclass(frozen=True)
class ReportedPrice:
    """Twilio's Call resource: `price` (None until Twilio has it), `price_unit`, `status`."""

    call_sid: str
    price_micros: int | None  # what was charged, positive
    price_unit: str
    status: str


class CallPriceSource(Protocol):
    async def call_price(self, call_sid: str) -> ReportedPrice: ...


class ReconcileMetrics(Protocol):
    def cost_reconciled(self, reported_micros: int, difference_micros: int) -> None: ...


class Outcome(StrEnum):
    RECONCILED = "reconciled"
    PENDING = "pending"  # Twilio has no price yet
    ALREADY = "already"  # reconciled before
    OTHER_CURRENCY = "other_currency"


def parse_twilio_price(price: str | None) -> int | None:
    """Twilio's "-0.01400" (a charge, so negative) -> 14000 micro-dollars; None stays None."""
    if price is None or price == "":
        return None
    return abs(to_micros(dollars_to_micros(price)))


class Reconciler:
    def __init__(self, source: CallPriceSource, costs: CostRepository, *,
                 ledger: CostLedger | None = None, metrics: ReconcileMetrics | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.source = source
        self.costs = costs
        self.ledger = ledger
        self.metrics = metrics
        self.clock = clock

    async def reconcile(self, call_id: uuid.UUID | None, call_sid: str,
                        campaign_id: uuid.UUID | None) -> Outcome:
        reported = await self.source.call_price(call_sid)
        if reported.price_micros is None:
            return Outcome.PENDING
        if reported.price_unit.upper() != "USD":
            log.warning("call %s priced in %s; the ledger is in USD: not reconciled", call_sid,
                        reported.price_unit)
            return Outcome.OTHER_CURRENCY
        metered = await self.costs.metered_telephony(call_id) if call_id is not None else 0
        entry = Reconciliation(call_id, call_sid, campaign_id, metered, reported.price_micros,
                               reported.price_unit.upper(), self.clock())
        if not await self.costs.record_reconciliation(entry):
            return Outcome.ALREADY
        if self.metrics is not None:
            self.metrics.cost_reconciled(entry.reported_micros, entry.difference_micros)
        if entry.difference_micros > 0 and self.ledger is not None:
            self.ledger.submit([CostRecorded(
                event_id=uuid.uuid5(_ADJUSTMENT_NAMESPACE, call_sid), service=CostService.TELEPHONY,
                provider=ADJUSTMENT_PROVIDER, unit=CostUnit.REQUESTS, quantity=Decimal(1),
                unit_price_micros=Decimal(entry.difference_micros),
                amount_micros=entry.difference_micros, occurred_at=entry.reported_at,
                call_id=call_id, campaign_id=campaign_id, tier="reconciliation")])
        return Outcome.RECONCILED


class ReconcileQueue:
    """Asks Twilio at each delay after a call ends until the price is there; owns its tasks."""

    def __init__(self, reconciler: Reconciler, delays_s: Sequence[float]) -> None:
        if not delays_s or any(d < 0 for d in delays_s):
            raise ValidationError("reconcile delays must be a non-empty list of seconds >= 0")
        self.reconciler = reconciler
        self.delays_s = list(delays_s)
        self._tasks: set[asyncio.Task[Outcome]] = set()

    def schedule(self, call_id: uuid.UUID | None, call_sid: str,
                 campaign_id: uuid.UUID | None) -> asyncio.Task[Outcome]:
        task = asyncio.create_task(self._run(call_id, call_sid, campaign_id),
                                   name=f"reconcile-{call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, call_id: uuid.UUID | None, call_sid: str,
                   campaign_id: uuid.UUID | None) -> Outcome:
        outcome = Outcome.PENDING
        for delay in self.delays_s:
            await asyncio.sleep(delay)
            try:
                outcome = await self.reconciler.reconcile(call_id, call_sid, campaign_id)
            except ReautodError as err:
                log.warning("reconciling call %s: %s", call_sid, err.message)
                continue
            if outcome is not Outcome.PENDING:
                return outcome
        log.info("call %s: Twilio reported no price after %d tries", call_sid, len(self.delays_s))
        return outcome

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
