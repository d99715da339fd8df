"""The outbound part of the daemon, built in dependency order.

`TwilioSide` (Twilio's client, signatures and the calls in flight) comes first, before the call
manager: the agent's transfer needs only it. This part comes after the call manager (`line`),
whose admission, live sessions and prepared greetings it uses, and builds, each from what
exists before it: the placing path, the dialer over it, what the tracker tells the dialer, the
hang-up interface, the webhook tracker, the live-call observer (the daemon adds it to the call
manager's observer fan-out), manual dials, the control methods and the timers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter

from reautod.call_events import CallObserver
from reautod.campaigns.dialer import BudgetCheck, Dialer, ErasedNumbers, LoadPace
from reautod.campaigns.dnc import DncList
from reautod.campaigns.inbound import InboundDesk
from reautod.campaigns.lead_queue import SqlLeadQueue
from reautod.campaigns.pacing import ConcurrencyLimiter, TokenBucket
from reautod.campaigns.store_adapters import StoreDialLog, StoreDncStorage, StoreLeadDirectory
from reautod.engines.base import TextToSpeech
from reautod.live_settings import LiveSettings
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.outbound.calls import LiveLine
from reautod.outbound.hangup import HangUp
from reautod.outbound.live import LiveCallObserver
from reautod.outbound.manual_dial import ManualDial
from reautod.outbound.methods import CampaignMethods
from reautod.outbound.outcomes import DialOutcomes, EndedUnconnected, ManualSlots
from reautod.outbound.placing import CallPlacer, RecordWriter
from reautod.outbound.refusals import BlockCounter
from reautod.outbound.timers import LEASE_TTL, DialTimers
from reautod.outbound.tracker import CallTracker
from reautod.outbound.twilio_side import TwilioSide
from reautod.outbound.work import BackgroundWork
from reautod.pipeline.greetings import synthesize_all
from reautod.store.database import Database
from reautod.store.repositories import CallRepository, CampaignRepository
from reautod.telephony.clips import SpokenClips
from reautod.telephony.webhooks import BusyMessage, InboundGate, twilio_router

CALLS_PER_SECOND = 1.0  # Twilio's default CPS for a standard account
VOICEMAIL_TTS_TIMEOUT_S = 30.0  # the whole message (up to 1,500 characters), once per campaign


class OutboundPart:
    """Dialing, Twilio's webhooks and the telephony side of live calls, as one daemon part."""

    def __init__(
        self,
        live: LiveSettings,
        db: Database,
        twilio: TwilioSide,
        writer: RecordWriter,
        metrics: Metrics,
        bus: EventBus,
        *,
        line: LiveLine | None,
        dnc: DncList | None = None,
        tts: TextToSpeech | None = None,
        ended_unconnected: EndedUnconnected | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        budget: BudgetCheck | None = None,
        erased: ErasedNumbers | None = None,
        load: LoadPace | None = None,
        inbound_gate: InboundGate | None = None,
    ) -> None:
        self.twilio = twilio
        self.bus = bus
        self.live = live  # the holder, not a copy: openings and the box's call cap follow a reload
        self.inbound_gate = inbound_gate  # load shedding: a caller the box cannot take hears why
        self.dnc = dnc or DncList(StoreDncStorage(db))
        campaigns = CampaignRepository(db)
        link = twilio.link
        # 1. The one placing path, and the dialer that places its leads' calls by it.
        self.placer = CallPlacer(live, twilio, campaigns, writer, bus, line=line, clock=clock)
        self.dialer = Dialer(
            SqlLeadQueue(db, lease_ttl=LEASE_TTL), StoreLeadDirectory(db), self.placer, self.dnc,
            StoreDialLog(db, BlockCounter(metrics), clock=clock),
            limiter=ConcurrencyLimiter(live.current.calls.max_concurrent),
            bucket=TokenBucket(CALLS_PER_SECOND, burst=1, now=monotonic()),
            budget=budget, erased=erased, load=load,
        )
        # 2. What the dialer hears of its calls; how calls end.
        self.slots = ManualSlots(self.dialer.limiter)
        self.outcomes = DialOutcomes(self.dialer, self.slots, line=line,
                                     ended_unconnected=ended_unconnected)
        work = BackgroundWork()
        hangup = HangUp(link.client, line) if link is not None else None
        # 3. Twilio's webhooks (voicemails in the agent's voice), and the live calls' observer.
        self.clips: SpokenClips | None = None
        self.tracker: CallTracker | None = None
        if link is not None and hangup is not None:
            self.clips = SpokenClips(link.validator.url_for)
            if tts is not None:
                self.clips.speak = lambda text, call_id: synthesize_all(
                    tts, text, call_id=call_id, timeout_s=VOICEMAIL_TTS_TIMEOUT_S)
            self.tracker = CallTracker(
                db, twilio.registry, link, self.outcomes, hangup, work, metrics=metrics,
                bus=bus, clock=clock, inbound=InboundDesk(live, db, clock=clock, erased=erased),
                clips=self.clips)
        self.live_calls = LiveCallObserver(twilio.registry, self.dnc, CallRepository(db), work,
                                           link=link, hangup=hangup, clock=clock)
        # 4. The operator's side: manual dials, the control methods; the timers last.
        manual = ManualDial(db, self.dialer, self.placer, self.slots, twilio, metrics, line=line,
                            erased=erased, clock=clock, monotonic=monotonic)
        self.methods = CampaignMethods(
            db, twilio, self.dnc, manual, opening_for=self.placer.opening_for,
            calls_per_minute=lambda: self.dialer.bucket.rate * 60, line=line, hangup=hangup,
            erased=erased, clock=clock)
        self.timers = DialTimers(self.dialer, campaigns, live, line=line, tracker=self.tracker,
                                 clock=clock, monotonic=monotonic)
        self._work = work

    @property
    def observer(self) -> CallObserver:
        """The telephony side of live calls, for the call manager's observer fan-out."""
        return self.live_calls

    def control_methods(self) -> list[Method]:
        """campaigns.list, campaign.*, dial, dnc.*, calls.history, call.show, call.transfer."""
        return self.methods.methods()

    def routers(self) -> list[APIRouter]:
        """Twilio's webhooks (only when Twilio is configured: nothing could be verified else)."""
        link = self.twilio.link
        if self.tracker is None or link is None:
            return []
        twilio = self.live.current.twilio
        routers = [twilio_router(self.tracker, link.validator,
                                 declined_message=twilio.inbound_message, gate=self.inbound_gate,
                                 busy=BusyMessage(twilio.busy_message, twilio.busy_audio_url))]
        return routers + ([self.clips.router()] if self.clips is not None else [])

    async def start(self) -> None:
        """Start the dialing timer and the lease heartbeat (call before READY)."""
        await self.timers.start()

    async def stop_dialing(self) -> None:
        """Place no more calls (first step of a drain); calls in flight go on."""
        await self.timers.stop_dialing()

    async def close(self) -> None:
        await self.timers.close()
        await self._work.close()
