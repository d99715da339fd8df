"""The cost part of the daemon: price book, ledger, budgets, per-call meters, as one object.

`CostPart` is what the daemon builds (after the store, before the call manager), starts, asks
for its call observer, its metered engines, its dial check and its control methods, and closes
(after the calls, before the write-behind queue stops):

- `observers`: the `CallObserver`s that meter each call (publishing `cost.update`) and, with
  `[elevenlabs] enabled`, choose each call's voice tier (`PremiumVoice`);
- `metered(engines)`: the engines as the call manager should see them, each request metered,
  the voice a `TieredTTS` (premium where the tier engine chose it, else the local engine);
- `llm_usage`: the meter of model requests made beside the engines (the dialogue's JSON
  extraction);
- `check_dial(campaign_id)`: the budget's verdict on a new dial (`DialRefusal` or None);
- `reconcile_with(source)` when Twilio is configured: each phone call's price, once Twilio has
  it (`cost.reconcile_delays_s` after the call), against the ledger;
- a task that forecasts budgets and re-syncs their counters every `cost.forecast_interval_s`;
  threshold and forecast alerts go out as `budget.alert` events, and to each of `alert_sinks`
  (the daemon adds the integrations' outbox webhooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from reautod.call_events import CallObserver
from reautod.config import Settings
from reautod.cost.budgets import AlertSink, BudgetGauges, BudgetGuard, DialRefusal
from reautod.cost.control import budget_methods
from reautod.cost.counters import open_counters
from reautod.cost.ledger import CostLedger, CostMetrics, RecordSink
from reautod.cost.metered import MeteredEngines
from reautod.cost.money import dollars_to_micros, to_micros
from reautod.cost.observer import CostObserver
from reautod.cost.premium import PremiumVoice, QuotaMetrics
from reautod.cost.pricebook import load_price_books
from reautod.cost.reconcile import CallPriceSource, ReconcileMetrics, ReconcileQueue, Reconciler
from reautod.cost.results import BudgetAlert, CostUpdate
from reautod.cost.tiers import PremiumTerms, TierEngine, TierMetrics
from reautod.cost.tracker import CostTracker
from reautod.engines.elevenlabs import ElevenLabsTTS, VoiceChoice
from reautod.engines.registry import EngineSet
from reautod.engines.tiered import FallbackMetrics, TieredTTS
from reautod.errors import ConfigError, NotFoundError, ReautodError
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.resilience.breaker import Breakers
from reautod.store.database import Database
from reautod.store.repositories import (
    BudgetRepository,
    CallRepository,
    CampaignRepository,
    LeadRepository,
)
from reautod.store.repositories.costs import CostRepository

log = logging.getLogger(__name__)


class PartMetrics(CostMetrics, BudgetGauges, ReconcileMetrics, TierMetrics, FallbackMetrics,
                  QuotaMetrics, Protocol):
    """What the cost part counts (reautod.observability.metrics.Metrics)."""


class CostPart:
    """See the module docstring."""

    def __init__(self, settings: Settings, db: Database, sink: RecordSink, metrics: PartMetrics,
                 bus: EventBus, *, elevenlabs_api_key: str | None = None,
                 breakers: Breakers | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings.cost
        self.db = db
        self.metrics = metrics
        self.bus = bus
        self.breakers = breakers  # the daemon's circuits (ElevenLabs' among them)
        self.books = load_price_books(self.settings.price_book)  # ConfigError names the problem
        premium = settings.elevenlabs
        if premium.enabled:  # a plan or model the book does not price is a config error now
            self.books.at(clock()).elevenlabs_char(premium.plan, premium.model_id)
        self.campaigns = CampaignRepository(db)
        self.calls = CallRepository(db)
        self.counters = open_counters(settings.redis_url)
        self.guard = BudgetGuard(
            BudgetRepository(db), CostRepository(db), self.counters,
            thresholds_pct=self.settings.alert_thresholds_pct,
            forecast_window=self.settings.forecast_window, clock=clock, alerts=self,
            gauges=metrics)
        self.ledger = CostLedger(sink, self.guard, metrics)
        self.tracker = CostTracker(self.books, self.ledger, plan=premium.plan,
                                   model=premium.model_id, clock=clock)
        self.observer = CostObserver(self.tracker, self._publish_cost, self._campaign_of,
                                     self._amd_ran)
        self.premium = (self._premium_voice(settings, sink, elevenlabs_api_key, clock)
                        if premium.enabled else None)
        self.observers: list[CallObserver] = [self.observer]
        if self.premium is not None:
            self.observers.append(self.premium)
        self._ticker: asyncio.Task[None] | None = None
        self.alert_sinks: list[AlertSink] = []  # besides the bus (the outbox's webhooks)
        self.reconcile: ReconcileQueue | None = None

    async def start(self) -> None:
        """Budgets and the spending stop from the database, counters rebuilt from the ledger."""
        await self.guard.start()
        await self.ledger.start()
        self._ticker = asyncio.create_task(self._tick_loop(), name="budget-forecast")
        if self.premium is not None:
            await self.premium.start()

    def metered(self, engines: EngineSet) -> MeteredEngines:
        tiered = TieredTTS(engines.tts, self.premium.eleven if self.premium else None,
                           on_speech=self.tracker.on_speech, metrics=self.metrics)
        if self.premium is not None:
            self.premium.attach(tiered)
        return MeteredEngines(engines, self.tracker.usage_meter, tiered)

    async def check_dial(self, campaign_id: uuid.UUID | None) -> DialRefusal | None:
        return await self.guard.check_dial(campaign_id)

    def reconcile_with(self, source: CallPriceSource) -> None:
        """Reconcile every phone call that ends from now on with the price `source` reports."""
        reconciler = Reconciler(source, CostRepository(self.db), ledger=self.ledger,
                                metrics=self.metrics)
        self.reconcile = self.tracker.reconcile = ReconcileQueue(
            reconciler, self.settings.reconcile_delays_s)

    def control_methods(self) -> list[Method]:
        """budget.status|set|remove|stop|resume."""
        return budget_methods(self.guard, self.campaigns,
                              default_timezone=self.settings.timezone)

    async def close(self) -> None:
        """After the calls are closed: their last rows to the write-behind queue, then stop."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.observer.close()
        if self.premium is not None:
            await self.premium.close()
        if self.reconcile is not None:  # calls not reconciled yet stay so (their rows are kept)
            await self.reconcile.stop()
        await self.ledger.stop()
        await self.counters.close()

    # -- internals --------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.forecast_interval_s)
            try:
                await self.guard.tick()
            except ReautodError as err:  # the database is down: the next tick tries again
                log.warning("budget forecast: %s (%s)", err.message, err.code)

    def _premium_voice(self, settings: Settings, sink: RecordSink, api_key: str | None,
                       clock: Callable[[], datetime]) -> PremiumVoice:
        s = settings.elevenlabs
        if not api_key:
            raise ConfigError("elevenlabs.enabled needs the ElevenLabs API key", [(
                "secrets.elevenlabs_api_key_file", "give the key ([secrets], the systemd "
                "credential elevenlabs_api_key, or REAUTOD_SECRET_ELEVENLABS_API_KEY)")])
        book = self.books.at(clock())
        eleven = ElevenLabsTTS(s, api_key, concurrency=book.elevenlabs_concurrency(s.plan),
                               breakers=self.breakers or Breakers(
                                   failures=s.breaker_failures, recovery_s=s.breaker_recovery_s))
        tiers = TierEngine(self.books.at, self.guard, sink, premium_available=eleven.available,
                           metrics=self.metrics)
        cost = self.settings
        terms = PremiumTerms(
            deal_value_micros=to_micros(dollars_to_micros(cost.deal_value_usd.lstrip("$"))),
            uplift=Decimal(str(cost.premium_uplift)),
            expected_characters=cost.premium_chars_per_call, plan=s.plan, model=s.model_id)
        return PremiumVoice(eleven, tiers, terms, VoiceChoice.from_settings(s), self._call_facts,
                            quota_interval_s=s.quota_interval_s, clock=clock,
                            metrics=self.metrics)

    async def _call_facts(self, call_id: uuid.UUID) -> tuple[uuid.UUID | None, int | None]:
        try:
            row = await self.calls.get(call_id)
        except NotFoundError:
            return None, None
        if row.lead_id is None:
            return row.campaign_id, None
        return row.campaign_id, (await LeadRepository(self.db).get(row.lead_id)).score

    async def _campaign_of(self, call_id: uuid.UUID) -> uuid.UUID | None:
        try:
            return (await self.calls.get(call_id)).campaign_id
        except NotFoundError:
            return None  # not placed by the dialer (a simulated or inbound call)

    async def _amd_ran(self, call_id: uuid.UUID) -> bool:
        try:
            return (await self.calls.get(call_id)).amd_result is not None
        except NotFoundError:
            return False

    def llm_usage(self, call_id: str, prompt_tokens: int, completion_tokens: int,
                  compute_s: float) -> None:
        """A model request outside the call's engines (the dialogue's constrained-JSON fact
        extraction: `JsonUsage`), metered to the call like its replies."""
        self.tracker.usage_meter(call_id).llm(prompt_tokens, completion_tokens, compute_s)

    def _publish_cost(self, update: CostUpdate) -> None:
        self.bus.publish("cost.update", update)

    def budget_alert(self, alert: BudgetAlert) -> None:
        """The guard's AlertSink: every alert to control-socket subscribers and `alert_sinks`."""
        self.bus.publish("budget.alert", alert)
        for sink in self.alert_sinks:
            sink.budget_alert(alert)
