"""The cost part's face to the call path: one meter per live call, flushed to the ledger.

The daemon holds one `CostTracker`. The live call calls `begin_call` when the call is created,
reports usage (`meter(call_id)` for STT/LLM, `on_speech` is TieredTTS's callback), calls
`flush(call_id)` at each turn end (ledger rows out, live snapshot back for `cost.update`) and
`end_call(...)` with Twilio's final duration, which flushes the last rows and schedules the
reconciliation with Twilio's reported price. Nothing here awaits: it is safe on the audio path.

Usage may arrive before the call starts (a dialed call's greeting is synthesized while the phone
rings): it goes to an early meter, adopted by `begin_call`. Early meters of calls that never
start are dropped, oldest first, beyond `MAX_EARLY` (a few seconds of local compute each).
Pipeline call ids are strings (`sim-...` for simulated calls); they map to the store's call ids
with `call_uuid`, like the store's own observer does.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from reautod.cost.ledger import CostLedger
from reautod.cost.meters import CallMeter, CostSnapshot
from reautod.cost.pricebook import Direction, PriceBooks
from reautod.cost.reconcile import ReconcileQueue
from reautod.engines.tiered import SpeechUsage
from reautod.errors import NotFoundError
from reautod.store.call_observer import call_uuid
from reautod.store.enums import VoiceTier

log = logging.getLogger(__name__)

MAX_EARLY = 256


class CostTracker:
    def __init__(self, books: PriceBooks, ledger: CostLedger, *, plan: str, model: str,
                 reconcile: ReconcileQueue | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.books = books
        self.ledger = ledger
        self.plan = plan
        self.model = model
        self.reconcile = reconcile
        self.clock = clock
        self._meters: dict[uuid.UUID, CallMeter] = {}
        self._early: OrderedDict[uuid.UUID, CallMeter] = OrderedDict()

    def begin_call(self, call_id: uuid.UUID, campaign_id: uuid.UUID | None, *,
                   direction: Direction = "outbound", started_at: datetime | None = None
                   ) -> CallMeter:
        """Priced with the book in force when the call started (or its first usage before
        that), for its whole life."""
        meter = self._early.pop(call_id, None)
        if meter is None:
            meter = CallMeter(self.books.at(started_at or self.clock()), call_id, campaign_id,
                              direction=direction)
        meter.campaign_id, meter.direction = campaign_id, direction
        self._meters[call_id] = meter
        return meter

    def find(self, call_id: uuid.UUID) -> CallMeter | None:
        return self._meters.get(call_id)

    def usage_meter(self, pipeline_call_id: str) -> CallMeter:
        """Where the engines' usage for this call goes: its meter, or an early one."""
        call_id = call_uuid(pipeline_call_id)
        meter = self._meters.get(call_id) or self._early.get(call_id)
        if meter is None:
            meter = self._early[call_id] = CallMeter(self.books.at(self.clock()), call_id, None)
            while len(self._early) > MAX_EARLY:
                dropped, _ = self._early.popitem(last=False)
                log.debug("call %s never started: its early usage is not metered", dropped)
        return meter

    def meter(self, call_id: uuid.UUID) -> CallMeter:
        meter = self._meters.get(call_id)
        if meter is None:
            raise NotFoundError(f"no cost meter for call {call_id}")
        return meter

    def on_speech(self, usage: SpeechUsage) -> None:
        """TieredTTS's usage callback (its call ids are the pipeline's)."""
        meter = self.usage_meter(usage.call_id)
        if usage.tier is VoiceTier.PREMIUM:
            meter.tts_premium(usage.characters, usage.audio_s, plan=self.plan, model=self.model)
        else:
            meter.tts_local(usage.characters, usage.audio_s, usage.compute_s)

    def flush(self, call_id: uuid.UUID) -> CostSnapshot:
        """Hand what was metered since the last flush to the ledger; the live cost."""
        meter = self.meter(call_id)
        self.ledger.submit(meter.flush(self.clock()))
        return meter.snapshot()

    def end_call(self, call_id: uuid.UUID, *, duration_s: float, amd: bool = False,
                 call_sid: str | None = None, media_stream: bool = True) -> CostSnapshot:
        """Twilio's final CallDuration (0 when unanswered): last rows, then reconciliation."""
        meter = self.meter(call_id)
        meter.telephony_final(duration_s, media_stream=media_stream)
        if amd:
            meter.amd()
        snapshot = self.flush(call_id)
        del self._meters[call_id]
        if call_sid and duration_s > 0 and self.reconcile is not None:
            self.reconcile.schedule(call_id, call_sid, meter.campaign_id)
        return snapshot

    def live(self) -> list[CostSnapshot]:
        return [m.snapshot() for m in self._meters.values()]
