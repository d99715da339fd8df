"""The telephony part of the daemon: Twilio webhooks and calls, the dialer and its timers.

`TelephonyPart` is the one object the daemon builds, starts and closes. It implements the
dialer's `CallPlacer` (Twilio `calls.create` with the stream TwiML) and the tracker's
`DialerHooks`, owns the dialing timer (a tick per running campaign) and the lease heartbeat,
and hands out the webhook router, the media-upgrade check and the control methods.

Without Twilio settings (account SID, caller ID, public base URL, auth token) the daemon still
runs: no webhooks are served, the media WebSocket takes unsigned simulator calls, and `dial` /
`campaign.start` refuse with an UnavailableError naming what to set.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fastapi import APIRouter, WebSocket
from twilio.request_validator import RequestValidator

from reautod.call_events import (
    CallInfo,
    CallState,
    CallStateEvent,
    CallStateSource,
    TurnRecord,
)
from reautod.campaigns.call_tracker import CallTracker, LiveSession, TrackedCall
from reautod.campaigns.control import campaign_methods
from reautod.campaigns.dialer import (
    BlockedDial,
    BlockReason,
    BudgetCheck,
    Dialer,
    ErasedNumbers,
    LeadTarget,
    LoadPace,
)
from reautod.campaigns.dnc import DncChannel, DncList, normalize_phone
from reautod.campaigns.inbound import InboundDesk
from reautod.campaigns.lead_queue import LeadClaim, SqlLeadQueue
from reautod.campaigns.pacing import ConcurrencyLimiter, Outcome, TokenBucket
from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.campaigns.store_adapters import StoreDialLog, StoreDncStorage, StoreLeadDirectory
from reautod.config import Secrets, Settings
from reautod.engines.base import TextToSpeech
from reautod.errors import ConfigError, ReautodError, UnavailableError, ValidationError
from reautod.live_settings import LiveSettings
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.pipeline.greetings import synthesize_all
from reautod.resilience.service import Resilience
from reautod.store.database import Database
from reautod.store.enums import CallDirection, CallOutcome, CallStatus, CallTransport, LeadStatus
from reautod.store.records import CallStarted, CallStatusChanged
from reautod.store.repositories import CallRepository, CampaignRepository
from reautod.telephony.clips import SpokenClips
from reautod.telephony.signatures import (
    SIGNATURE_HEADER,
    SignatureResult,
    TwilioSignatureValidator,
    header_value,
)
from reautod.telephony.state_machine import twilio_spelling
from reautod.telephony.stream import MAX_OPENING_CHARS, MEDIA_PATH, Direction, StreamParameters
from reautod.telephony.twilio_client import OutboundCall, TwilioCalls
from reautod.telephony.twiml import stream_twiml
from reautod.telephony.webhooks import AMD_PATH, STATUS_PATH, STREAM_ENDED_PATH, twilio_router

log = logging.getLogger(__name__)

TICK_S = 1.0  # how often each running campaign is offered free call slots
LEASE_TTL = timedelta(minutes=2)
HEARTBEAT_S = 30.0  # well inside the lease TTL
CALLS_PER_SECOND = 1.0  # Twilio's default CPS for a standard account
ERROR_PAUSE_S = 5.0
# A greeting prepared for a dialed call waits this long after the ring timeout for its stream
# (Twilio's queue at its calls-per-second, the create request, a recording announcement first);
# past that the call did not connect and its audio is dropped.
GREETING_MARGIN_S = 60.0
VOICEMAIL_TTS_TIMEOUT_S = 30.0  # the whole message (up to 1,500 characters), once per campaign


class Admission(Protocol):
    """The call manager, as far as dialing needs it."""

    def check_admission(self) -> None: ...

    def session(self, call_id: str) -> LiveSession | None: ...

    def prepare_greeting(self, call_id: str, *, lead_name: str, opening: str | None,
                         expires_in_s: float, campaign: str | None = None) -> None: ...

    def drop_greeting(self, call_id: str) -> None: ...


def missing_twilio_settings(settings: Settings, secrets: Secrets) -> list[str]:
    """The config keys and secrets dialing needs that are not set."""
    missing = []
    if not settings.twilio.account_sid:
        missing.append("twilio.account_sid")
    if not settings.twilio.from_number:
        missing.append("twilio.from_number")
    if not settings.http.public_base_url:
        missing.append("http.public_base_url")
    if not secrets.get("twilio_auth_token"):
        missing.append("the twilio_auth_token secret ([secrets] twilio_auth_token_file, the "
                       "systemd credential, or REAUTOD_SECRET_TWILIO_AUTH_TOKEN)")
    return missing


def _check_caller_id(number: str) -> None:
    try:
        if normalize_phone(number, "US") == number:
            return
    except ValidationError:
        pass
    raise ConfigError("twilio.from_number must be an E.164 number",
                      [("twilio.from_number", f"{number!r} is not like +15551234567")])


class TelephonyPart:
    """Twilio, the dialer and campaign operations, as one part of the daemon."""

    def __init__(
        self,
        settings: Settings | LiveSettings,
        secrets: Secrets,
        db: Database,
        metrics: Metrics,
        bus: EventBus,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        twilio: TwilioCalls | None = None,
        budget: BudgetCheck | None = None,
        erased: ErasedNumbers | None = None,
        resilience: Resilience | None = None,
        load: LoadPace | None = None,
    ) -> None:
        # the holder, not a copy: openings and the box's call cap follow a reload
        self.live = settings if isinstance(settings, LiveSettings) else LiveSettings(settings)
        settings = self.live.current
        self.erased = erased  # erased numbers are never dialed nor imported
        self.db = db
        self.metrics = metrics
        self.bus = bus
        self.clock = clock
        self.monotonic = monotonic
        self.campaigns = CampaignRepository(db)
        self.calls = CallRepository(db)
        self.dnc = DncList(StoreDncStorage(db))
        self.dialer = Dialer(
            SqlLeadQueue(db, lease_ttl=LEASE_TTL), StoreLeadDirectory(db), self, self.dnc,
            StoreDialLog(db, self._count_block, clock=clock),
            limiter=ConcurrencyLimiter(settings.calls.max_concurrent),
            bucket=TokenBucket(CALLS_PER_SECOND, burst=1, now=monotonic()),
            budget=budget,
            erased=erased,
            load=load,
        )
        self.manager: Admission | None = None
        self.validator: TwilioSignatureValidator | None = None
        self.tracker: CallTracker | None = None
        self.clips: SpokenClips | None = None  # voicemails in the agent's voice (with Twilio)
        self.problem: str | None = None  # why dialing is unavailable
        # told (call id, Twilio's final status) of a call that ended with no conversation (no
        # answer, busy, a machine): no pipeline observer heard it (the daemon plugs results in)
        self.ended_unconnected: Callable[[str, str], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: dict[uuid.UUID, str] = {}  # call slots held by manual dials, by call id
        self._dialing = False
        self._signer = RequestValidator(secrets.get("twilio_auth_token") or "-")
        missing = missing_twilio_settings(settings, secrets)
        if missing:
            self.problem = "Twilio is not configured: set " + ", ".join(missing)
            log.info("%s; dialing is off, simulated calls still work", self.problem)
            return
        try:
            _check_caller_id(settings.twilio.from_number or "")
            self.validator = TwilioSignatureValidator.from_settings(
                settings.http, secrets.get("twilio_auth_token"), on_result=self._count_signature)
            client = twilio or TwilioCalls.from_settings(
                settings.twilio, secrets.get("twilio_auth_token"), resilience=resilience)
        except ConfigError as err:
            details = "; ".join(f"{k}: {v}" for k, v in err.problems)
            self.problem = f"Twilio settings are invalid: {err.message} ({details})"
            self.validator = None
            log.error("%s; dialing is off", self.problem)
            return
        self.clips = SpokenClips(self.validator.url_for)
        self.tracker = CallTracker(db, client, self.validator, self.dnc, self,
                                   metrics=metrics, bus=bus,
                                   default_from=settings.twilio.from_number or "", clock=clock,
                                   inbound=InboundDesk(self.live, db, clock=clock, erased=erased),
                                   clips=self.clips)

    # -- wiring -----------------------------------------------------------------------------------

    def attach(self, manager: Admission) -> None:
        """The call manager (built after this part, since it reports to `call_observer`)."""
        self.manager = manager
        if self.tracker is not None:
            self.tracker.live = manager

    def speak_with(self, tts: TextToSpeech) -> None:
        """The voice that speaks voicemails (the call manager's metered TTS, once it exists)."""
        if self.clips is not None:
            self.clips.speak = lambda text, call_id: synthesize_all(
                tts, text, call_id=call_id, timeout_s=VOICEMAIL_TTS_TIMEOUT_S)

    def control_methods(self) -> list[Method]:
        """campaigns.list, campaign.*, dial, calls.history, call.show, call.transfer."""
        return campaign_methods(self)

    def routers(self) -> list[APIRouter]:
        """Twilio's webhooks (only when Twilio is configured: nothing could be verified else)."""
        if self.tracker is None or self.validator is None:
            return []
        routers = [twilio_router(self.tracker, self.validator,
                                 declined_message=self.settings.twilio.inbound_message)]
        return routers + ([self.clips.router()] if self.clips is not None else [])

    def media_upgrade_validator(self) -> Callable[[WebSocket], bool] | None:
        """The media WebSocket's signature check, or None without Twilio (simulator only)."""
        validator = self.validator
        if validator is None:
            return None

        def check(websocket: WebSocket) -> bool:
            return validator.check_websocket(
                validator.websocket_url(MEDIA_PATH), header_value(websocket.headers)).accepted

        return check

    def sign_media(self, _url: str) -> Mapping[str, str]:
        """Upgrade headers for a local simulated call when signatures are checked (the signature
        covers the public URL the TwiML names, whatever local URL the simulator dials)."""
        if self.validator is None:
            return {}
        url = self.validator.websocket_url(MEDIA_PATH)
        return {SIGNATURE_HEADER: self._signer.compute_signature(url, {})}

    @property
    def settings(self) -> Settings:
        """The settings in effect now (`twilio.*` and `http.*` stay as they were at start-up)."""
        return self.live.current

    @property
    def calls_per_minute(self) -> float:
        """The dial rate cap every campaign shares (the token bucket's)."""
        return self.dialer.bucket.rate * 60

    def require_twilio(self) -> CallTracker:
        if self.tracker is None:
            raise UnavailableError(self.problem or "Twilio is not configured",
                                   code="twilio_not_configured")
        return self.tracker

    async def health(self) -> tuple[bool, str]:
        if self.tracker is not None:
            return True, f"Twilio configured; {len(self.tracker.tracked())} call(s) tracked"
        # Not configured is a choice (simulator-only box); configured but invalid is a fault.
        configured = self.problem is not None and self.problem.startswith("Twilio settings are")
        return not configured, self.problem or "Twilio not configured"

    # -- the pipeline's observer (fan-out target) -------------------------------------------------

    def on_call_started(self, info: CallInfo) -> None:
        if self.tracker is not None:
            self.tracker.on_call_started(info)

    def on_turn(self, turn: TurnRecord) -> None:
        if self.tracker is not None:
            self.tracker.on_turn(turn)

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Nothing for telephony."""

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        if self.tracker is not None:
            self.tracker.on_call_ended(call_id, reason, duration_s)

    async def on_opt_out(self, call_id: str, phone: str | None = None) -> None:
        """The agent heard an opt-out: DNC the number, end the call (for the pipeline's tool)."""
        if self.tracker is not None:
            await self.tracker.on_opt_out(call_id, phone)
            return
        if phone is None:
            raise UnavailableError("no Twilio call to end and no phone number given")
        await self.dnc.add(phone, source=DncChannel.AGENT_TOOL, now=self.clock(),
                           reason=f"asked not to be called in call {call_id}")

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """Conversational states change nothing on the phone line."""

    async def transfer(self, call_id: str, to: str | None) -> None:
        """`CallHandoff` (reautod.conversation): the agent's transfer bridges the call to its
        campaign's human (`to`, when given, is that number: the agent reads it from the same
        campaign). NotFoundError for a call that is not a live Twilio call (a simulated one),
        ValidationError (code no_transfer) without a transfer number."""
        await self.require_twilio().transfer(call_id)

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """A key the caller pressed (for the pipeline): the campaign's opt-out key opts out."""
        if self.tracker is not None:
            self.tracker.on_dtmf(call_id, digit)

    # -- timers -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the dialing timer and the lease heartbeat (call before READY)."""
        self._dialing = True
        self._spawn(self._dial_loop(), "dialer")
        self._spawn(self._heartbeat_loop(), "dialer-heartbeat")

    async def stop_dialing(self) -> None:
        """Place no more calls (first step of a drain); calls in flight go on."""
        self._dialing = False
        tasks = [t for t in self._tasks if t.get_name() == "dialer"]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_dialing()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.tracker is not None:
            await self.tracker.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial_loop(self) -> None:
        while self._dialing:
            try:
                await self.tick()
                await asyncio.sleep(TICK_S)
            except ReautodError as err:
                log.warning("dialer: %s (%s)", err.message, err.code)
                await asyncio.sleep(ERROR_PAUSE_S)
            except Exception:  # the timer must outlive one bad tick; the traceback is logged
                log.exception("dialer tick failed")
                await asyncio.sleep(ERROR_PAUSE_S)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                lost = await self.dialer.heartbeat(self.clock())
            except ReautodError as err:
                log.warning("dialer heartbeat: %s (%s)", err.message, err.code)
                continue
            except Exception:  # as for the tick: a lost heartbeat loop would lose every lease
                log.exception("dialer heartbeat failed")
                continue
            if lost:
                log.warning("dialer: lost the lease on %d lead(s) in flight", len(lost))
            if self.tracker is not None:
                try:
                    await self.tracker.sweep_stale()
                except ReautodError as err:
                    log.warning("stale call sweep: %s (%s)", err.message, err.code)

    async def tick(self) -> int:
        """One dialing round over every running campaign; returns how many calls were placed."""
        if self.tracker is None or self.manager is None:
            return 0
        try:
            self.manager.check_admission()
        except ReautodError:
            return 0  # draining, engines missing or full: leads stay queued
        self.dialer.limiter.per_box = self.settings.calls.max_concurrent  # after a reload too
        placed = 0
        for campaign in await self.campaigns.list():
            if campaign.status != "active":
                continue
            try:
                settings = settings_of(campaign)
            except ValueError as err:
                log.error("campaign %s has invalid settings, not dialed: %s", campaign.name, err)
                continue
            report = await self.dialer.tick(settings.plan(campaign.id), self.clock(),
                                            self.monotonic())
            placed += report.dialed
        return placed

    def _count_block(self, entry: BlockedDial) -> None:
        self.count_refusal(entry.reason)

    def count_refusal(self, reason: BlockReason) -> None:
        if reason is BlockReason.WINDOW:
            self.metrics.dial_blocked("window")
        elif reason in (BlockReason.DNC, BlockReason.ERASED):
            self.metrics.dial_blocked("dnc")
        elif reason is BlockReason.BUDGET:
            self.metrics.dial_blocked("budget")

    def hold_slot(self, call_id: uuid.UUID, slot: str) -> None:
        """A call slot the dialer's gate gave a call outside the lead queue (`reautoctl dial`)."""
        self._slots[call_id] = slot

    def release_slot(self, call_id: uuid.UUID) -> None:
        """Give back the slot of such a call (once; calls of the lead queue have none here)."""
        slot = self._slots.pop(call_id, None)
        if slot is not None:
            self.dialer.limiter.release(slot)

    def _count_signature(self, _path: str, result: SignatureResult) -> None:
        if not result.accepted:
            self.metrics.webhook_signature_failures_total.inc()

    def opening_for(self, settings: CampaignSettings) -> str:
        """A campaign's opening as its calls carry it; ValidationError when it cannot fit."""
        text = settings.render_opening(self.settings.agent, self.settings.twilio.from_number)
        if len(text) > MAX_OPENING_CHARS:
            raise ValidationError(
                f"the call opening is {len(text)} characters once rendered; a Twilio stream "
                f"parameter carries at most {MAX_OPENING_CHARS}: shorten opening (or "
                "agent.greeting) or business_name", code="opening_too_long")
        return text

    # -- CallPlacer and DialerHooks ---------------------------------------------------------------

    async def place(self, claim: LeadClaim, target: LeadTarget) -> None:
        tracker = self.require_twilio()
        campaign = await self.campaigns.get(claim.campaign_id)
        settings = settings_of(campaign)
        call = TrackedCall(uuid.uuid4(), target.phone, CallDirection.OUTBOUND, campaign.id,
                           campaign.name, settings, claim.lead_id, claim.contact_id)
        await self.place_call(tracker, call, target.name)

    async def place_call(self, tracker: CallTracker, call: TrackedCall, lead_name: str) -> str:
        """Write the call row, create the call at Twilio, remember its sid; returns the sid."""
        assert self.validator is not None
        settings = call.settings
        caller_id = settings.caller_id or self.settings.twilio.from_number or ""
        # as the media socket reads it back (parse_start), so the prepared greeting matches
        lead = lead_name[:200].strip()
        opening = self.opening_for(settings)
        twiml = stream_twiml(
            self.validator.websocket_url(MEDIA_PATH),
            StreamParameters(call_id=str(call.call_id), campaign=call.campaign_name[:200],
                             lead_name=lead, direction=Direction.OUTBOUND, opening=opening),
            announcement=settings.recording_announcement if settings.record else None,
            action_url=self.validator.url_for(STREAM_ENDED_PATH),  # resume after a crash
        )
        request = OutboundCall(
            to=call.phone, from_=caller_id, twiml=twiml,
            status_callback_url=self.validator.url_for(STATUS_PATH),
            amd_callback_url=self.validator.url_for(AMD_PATH),
            machine_detection=settings.machine_detection,
            ring_timeout_s=settings.ring_timeout_s, time_limit_s=settings.time_limit_s,
        )
        request.validate()
        started = CallStarted(
            call_id=call.call_id, created_at=self.clock(), direction=CallDirection.OUTBOUND,
            transport=CallTransport.TWILIO, status=CallStatus.QUEUED,
            campaign_id=call.campaign_id, contact_id=call.contact_id, lead_id=call.lead_id,
            from_number=caller_id, to_number=call.phone,
        )
        await self.calls.write([started])
        await tracker.expect(call)
        if self.manager is not None:
            # the greeting's TTS runs while Twilio creates the call and the phone rings
            self.manager.prepare_greeting(str(call.call_id), lead_name=lead, opening=opening,
                                          expires_in_s=settings.ring_timeout_s
                                          + GREETING_MARGIN_S, campaign=call.campaign_name)
        try:
            created = await tracker.twilio.create(request)
        except BaseException as err:
            if self.manager is not None:
                self.manager.drop_greeting(str(call.call_id))
            await tracker.created(call, None)  # callbacks stop waiting for it
            if isinstance(err, ReautodError):
                await self.calls.write([CallStatusChanged(call.call_id, CallStatus.FAILED,
                                                          self.clock(), source="reautod",
                                                          detail={"error": err.code})])
                await self.calls.set_result(call.call_id, outcome=CallOutcome.FAILED,
                                            error_code=err.code)
            raise
        sid = created.sid
        await tracker.created(call, sid)
        # status QUEUED again: only the sid is filled in, no timeline point is added
        await self.calls.write([CallStarted(call_id=call.call_id, created_at=started.created_at,
                                            status=CallStatus.QUEUED, call_sid=sid)])
        event = CallStateEvent(call_id=str(call.call_id), state=CallStatus.QUEUED.value,
                               source=CallStateSource.REAUTOD, campaign=call.campaign_name)
        self.bus.publish(event.TOPIC, event.wire())
        return sid

    async def call_answered(self, call: TrackedCall, now: datetime) -> None:
        if call.lead_id is not None:
            await self.dialer.call_answered(call.lead_id, now)

    async def call_finished(self, call: TrackedCall, outcome: Outcome,
                            final_status: LeadStatus | None, now: datetime) -> None:
        if self.manager is not None:
            # no answer, busy, a machine hung up on: the greeting prepared for it goes (a call
            # whose stream started took its greeting already)
            self.manager.drop_greeting(str(call.call_id))
        if not call.stream_started and self.ended_unconnected is not None:
            self.ended_unconnected(str(call.call_id), twilio_spelling(call.timeline.status))
        self.release_slot(call.call_id)
        if call.lead_id is None or call.campaign_id is None:
            return
        status = await self.dialer.call_ended(call.settings.plan(call.campaign_id),
                                              call.lead_id, outcome, final_status, now)
        if status is not None:
            log.info("lead %s after call %s: %s", call.lead_id, call.call_id, status)
