"""Twilio calls in flight: the store-backed WebhookHandler, and the telephony side of live calls.

One `CallTracker` per daemon. It knows every Twilio call this daemon placed or answered (by our
call id and by CallSid), folds Twilio's status callbacks into each call's `CallTimeline` and
persists what the timeline accepts (APPLIED or LATE), acts on AMD results per the campaign's
machine policy (a voicemail plays in the agent's own voice: telephony.clips), starts recording
once the consent announcement has played (the media stream starts after the `<Say>`), turns a
caller's opt-out into a DNC entry and an immediate hang-up, and transfers calls to a human.

Webhook methods return at once: the work goes to tasks this object owns, serialised per call by
a lock so callbacks for one call apply in arrival order (the timeline orders them by
SequenceNumber anyway). A callback for a call this process does not know (a restart) is looked
up in the store and its timeline rebuilt from the stored events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from reautod.call_events import CallInfo, CallStateEvent, CallStateSource, TurnRecord
from reautod.campaigns.amd import AmdAction, amd_action, attempt_outcome
from reautod.campaigns.dnc import DncChannel, DncList, detect_opt_out, is_opt_out_digit
from reautod.campaigns.pacing import Outcome
from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.errors import NotFoundError, ReautodError, ValidationError
from reautod.observability.events import EventBus
from reautod.observability.logging import mask_phone
from reautod.observability.metrics import AMD_RESULTS, Metrics
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import (
    AmdResult,
    CallDirection,
    CallOutcome,
    CallStatus,
    CallTransport,
    LeadStatus,
)
from reautod.store.records import CallStarted, CallStatusChanged
from reautod.store.repositories import (
    AuditRepository,
    CallRepository,
    CampaignRepository,
    ContactRepository,
    LeadRepository,
)
from reautod.telephony.clips import SpokenClips
from reautod.telephony.signatures import TwilioSignatureValidator
from reautod.telephony.state_machine import (
    Applied,
    CallTimeline,
    StatusEvent,
    parse_status,
    twilio_spelling,
)
from reautod.telephony.stream import CloseCode
from reautod.telephony.twilio_client import TwilioCalls
from reautod.telephony.twiml import transfer_twiml, voicemail_twiml
from reautod.telephony.webhooks import (
    RECORDING_PATH,
    AmdCallback,
    InboundAnswer,
    LeadMatch,
    RecordingEvent,
    StatusCallback,
    VoiceRequest,
    to_e164,
)

log = logging.getLogger(__name__)

CREATE_WAIT_S = 10.0  # how long a callback for an unknown CallSid waits for a create in flight
TRANSFER_ANNOUNCEMENT = "Please hold while I transfer you."
TRANSFER_TIMEOUT_S = 30
STALE_MARGIN = timedelta(minutes=10)


@dataclass
class TrackedCall:
    """What telephony knows about one Twilio call while it lasts."""

    call_id: uuid.UUID
    phone: str
    direction: CallDirection
    campaign_id: uuid.UUID | None
    campaign_name: str
    settings: CampaignSettings
    lead_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    sid: str | None = None
    timeline: CallTimeline = field(default_factory=CallTimeline)
    answered_by: str | None = None
    opted_out: bool = False
    handed_off: str | None = None  # "transfer" / "voicemail": the stream ends, the call goes on
    hung_up: bool = False
    stream_started: bool = False
    recording_sid: str | None = None
    finished: bool = False
    started_at: datetime | None = None  # when we placed (or took) it, for the stale sweep
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def stale_after(self) -> timedelta:
        """Twilio ends every call by ring timeout + time limit; past that plus a margin its
        final callback was lost."""
        return timedelta(seconds=self.settings.ring_timeout_s + self.settings.time_limit_s) \
            + STALE_MARGIN


class DialerHooks(Protocol):
    """What the tracker tells the dialer about calls it placed."""

    async def call_answered(self, call: TrackedCall, now: datetime) -> None: ...

    async def call_finished(self, call: TrackedCall, outcome: Outcome,
                            final_status: LeadStatus | None, now: datetime) -> None: ...


class InboundCalls(Protocol):
    """How callers who ring us are answered: the agent's first words, and a lead for a caller
    who is none yet."""

    def inbound_opening(self, settings: CampaignSettings) -> str | None:
        """The campaign's rendered inbound greeting, or None (the caller speaks first)."""
        ...

    async def inbound_lead(self, phone: str) -> LeadMatch | None:
        """A new lead for a caller who is no lead (the inbound campaign's); None: not taken."""
        ...


class LiveSession(Protocol):
    def end(self, reason: str, close_code: int = CloseCode.NORMAL) -> None: ...


class LiveCalls(Protocol):
    """The call manager, as far as telephony needs it."""

    def session(self, call_id: str) -> LiveSession | None: ...


def _metric_outcome(call: TrackedCall) -> str:
    status = call.timeline.status
    if status is CallStatus.NO_ANSWER:
        return "no_answer"
    if status in (CallStatus.BUSY, CallStatus.FAILED, CallStatus.CANCELED):
        return status.value
    return "voicemail" if call.handed_off == "voicemail" else "completed"


def _call_outcome(call: TrackedCall) -> CallOutcome:
    status = call.timeline.status
    if call.opted_out:
        return CallOutcome.OPTED_OUT
    if status in (CallStatus.BUSY, CallStatus.NO_ANSWER):
        return CallOutcome.NO_ANSWER
    if status in (CallStatus.FAILED, CallStatus.CANCELED):
        return CallOutcome.FAILED
    if call.answered_by is not None and (call.answered_by.startswith("machine")
                                         or call.answered_by == "fax"):
        return CallOutcome.VOICEMAIL
    # A conversation happened: what it achieved is the dialogue's to record.
    return CallOutcome.UNKNOWN


class CallTracker:
    """The store-backed `WebhookHandler` and the telephony side of every live Twilio call."""

    def __init__(
        self,
        db: Database,
        twilio: TwilioCalls,
        validator: TwilioSignatureValidator,
        dnc: DncList,
        hooks: DialerHooks,
        *,
        metrics: Metrics,
        bus: EventBus,
        default_from: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        inbound: InboundCalls | None = None,
        clips: SpokenClips | None = None,
    ) -> None:
        self.db = db
        self.inbound = inbound
        self.clips = clips  # the voicemail in the agent's voice
        self.twilio = twilio
        self.validator = validator
        self.dnc = dnc
        self.hooks = hooks
        self.metrics = metrics
        self.bus = bus
        self.default_from = default_from
        self.clock = clock
        self.calls = CallRepository(db)
        self.live: LiveCalls | None = None
        self._by_id: dict[uuid.UUID, TrackedCall] = {}
        self._by_sid: dict[str, TrackedCall] = {}
        self._creating = 0
        self._changed = asyncio.Condition()
        self._restoring = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- bookkeeping ------------------------------------------------------------------------------

    def tracked(self) -> list[TrackedCall]:
        return list(self._by_id.values())

    def get(self, call_id: str | uuid.UUID) -> TrackedCall | None:
        key = call_id if isinstance(call_id, uuid.UUID) else call_uuid(call_id)
        return self._by_id.get(key)

    async def expect(self, call: TrackedCall) -> None:
        """A call is about to be created at Twilio: callbacks for new sids wait for it."""
        call.started_at = call.started_at or self.clock()
        async with self._changed:
            self._by_id[call.call_id] = call
            self._creating += 1

    async def created(self, call: TrackedCall, sid: str | None) -> None:
        """Twilio answered the create (sid), or it failed (None: the call is forgotten)."""
        async with self._changed:
            self._creating -= 1
            if sid is None:
                self._by_id.pop(call.call_id, None)
            else:
                call.sid = sid
                self._by_sid[sid] = call
            self._changed.notify_all()

    def _forget(self, call: TrackedCall) -> None:
        self._by_id.pop(call.call_id, None)
        if call.sid is not None:
            self._by_sid.pop(call.sid, None)

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(coro: Awaitable[None], what: str) -> None:
        try:
            await coro
        except ReautodError as err:
            log.warning("%s failed: %s (%s)", what, err.message, err.code)
        except Exception:  # background work after a webhook answered: nobody else would see it
            log.exception("%s failed", what)

    async def sweep_stale(self) -> int:
        """End calls whose final status callback never came (Twilio must have ended them by
        now): the timeline gets a `completed` (answered) or `failed` from us, the lead is
        released. Returns how many were swept."""
        now = self.clock()
        swept = 0
        for call in self.tracked():
            if call.started_at is None or now - call.started_at < call.stale_after():
                continue
            async with call.lock:
                if call.finished:
                    continue
                answered = call.stream_started or call.timeline.status is CallStatus.IN_PROGRESS
                final = CallStatus.COMPLETED if answered else CallStatus.FAILED
                if call.timeline.apply(StatusEvent(twilio_spelling(final), None, now, "reautod")) \
                        is not Applied.APPLIED:
                    continue
                log.warning("call %s: no final status from Twilio after %s; assumed %s",
                            call.call_id, call.stale_after(), final)
                await self.calls.write([CallStatusChanged(
                    call.call_id, final, now, source="reautod",
                    detail={"assumed": "no final status callback"})])
                await self._finish(call, now)
                swept += 1
        return swept

    async def settle(self) -> None:
        """Wait until the work handed over so far (and what it handed on) is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Let the work already handed over finish (bounded), then cancel what is left."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _resolve(self, sid: str) -> TrackedCall | None:
        """The call with this CallSid: in memory, after a create in flight, or from the store."""
        call = self._by_sid.get(sid)
        if call is not None:
            return call
        if self._creating:
            with contextlib.suppress(TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: sid in self._by_sid or not self._creating),
                        CREATE_WAIT_S)
            call = self._by_sid.get(sid)
            if call is not None:
                return call
        async with self._restoring:  # two callbacks for one unknown call restore it once
            known = self._by_sid.get(sid)
            return known if known is not None else await self._restore(sid)

    async def _restore(self, sid: str) -> TrackedCall | None:
        row = await self.calls.by_sid(sid)
        if row is None:
            log.info("callback for unknown call %s ignored", sid)
            return None
        settings, name = CampaignSettings(), "manual"
        if row.campaign_id is not None:
            campaign = await CampaignRepository(self.db).get(row.campaign_id)
            settings = settings_of(campaign)
            name = campaign.name
        direction = CallDirection(row.direction)
        phone = row.from_number if direction is CallDirection.INBOUND else row.to_number
        call = TrackedCall(row.id, phone or "", direction,
                           row.campaign_id, name, settings, row.lead_id, row.contact_id, sid,
                           answered_by=row.amd_result, started_at=row.created_at)
        for event in await self.calls.timeline(row.id):
            call.timeline.apply(StatusEvent(event.status.replace("_", "-"), event.sequence,
                                            event.at, event.source))
        if call.timeline.status.terminal:
            call.finished = True  # replays of a finished call: nothing to do, nothing to keep
            return call
        self._by_id[call.call_id] = call
        self._by_sid[sid] = call
        return call

    # -- WebhookHandler ---------------------------------------------------------------------------

    async def lookup_lead_by_phone(self, e164: str) -> LeadMatch | None:
        leads = await LeadRepository(self.db).by_phone(e164)
        if not leads:
            return None
        lead = leads[0]
        contact = await ContactRepository(self.db).get(lead.contact_id)
        campaign = await CampaignRepository(self.db).get(lead.campaign_id)
        return LeadMatch(str(lead.id), contact.name or "", campaign.name)

    async def on_inbound(self, call: VoiceRequest, lead: LeadMatch | None) -> InboundAnswer | None:
        known = self._by_sid.get(call.call_sid)
        if known is not None:  # Twilio retried the voice webhook: same answer
            return self._answer(known, lead.name if lead else "")
        if lead is None:
            # Someone who is no lead yet: the inbound campaign takes them as a new lead (their
            # name is not known to the agent: it greets without one), else they hear the
            # declined message.
            caller = to_e164(call.from_)
            if caller is None or self.inbound is None:
                return None
            lead = await self.inbound.inbound_lead(caller)
            if lead is None:
                return None
        campaign = await CampaignRepository(self.db).find(lead.campaign)
        settings = settings_of(campaign)
        lead_row = await LeadRepository(self.db).get(uuid.UUID(lead.lead_id))
        contact = await ContactRepository(self.db).get(lead_row.contact_id)
        tracked = TrackedCall(uuid.uuid4(), contact.phone_e164, CallDirection.INBOUND,
                              campaign.id, campaign.name, settings, lead_row.id, contact.id,
                              call.call_sid, started_at=self.clock())
        self._by_id[tracked.call_id] = tracked
        self._by_sid[call.call_sid] = tracked
        record = CallStarted(call_id=tracked.call_id, created_at=self.clock(),
                             direction=CallDirection.INBOUND, transport=CallTransport.TWILIO,
                             status=CallStatus.RINGING, campaign_id=campaign.id,
                             contact_id=contact.id, lead_id=lead_row.id, call_sid=call.call_sid,
                             from_number=contact.phone_e164, to_number=to_e164(call.to))
        self._spawn(self.calls.write([record]), f"inbound call {call.call_sid}")
        return self._answer(tracked, lead.name)

    def _answer(self, call: TrackedCall, name: str) -> InboundAnswer:
        announcement = call.settings.recording_announcement if call.settings.record else None
        opening = self.inbound.inbound_opening(call.settings) if self.inbound else None
        return InboundAnswer(str(call.call_id), call.campaign_name, name, announcement, opening)

    async def on_status(self, event: StatusCallback) -> None:
        self._spawn(self._status(event), f"status callback for {event.call_sid}")

    async def on_amd(self, event: AmdCallback) -> None:
        self._spawn(self._amd(event), f"AMD result for {event.call_sid}")

    async def on_recording(self, event: RecordingEvent) -> None:
        self._spawn(self._recording(event), f"recording callback for {event.call_sid}")

    async def _status(self, event: StatusCallback) -> None:
        call = await self._resolve(event.call_sid)
        if call is None:
            return
        async with call.lock:
            applied = call.timeline.apply(event.event())
            if applied not in (Applied.APPLIED, Applied.LATE):
                return
            status = parse_status(event.call_status)
            if status is None:  # applied means known; kept for the type checker
                return
            if applied is Applied.LATE and \
                    status.rank >= call.timeline.status.rank:
                # A step further on than the call's state but numbered before it contradicts
                # the order Twilio gave; stored, it would move the call forward (the store's
                # status only moves forward) where the state machine did not. History only
                # keeps steps that came genuinely earlier.
                log.info("call %s: ignoring %s numbered %s, before later steps",
                         call.call_id, status, event.sequence_number)
                return
            reported = (("call_duration_s", event.call_duration),
                        ("sip_response_code", event.sip_response_code))
            detail = {k: v for k, v in reported if v is not None}
            now = self.clock()
            await self.calls.write([CallStatusChanged(
                call.call_id, status, event.at() or now, source="twilio",
                sequence=event.sequence_number, detail=detail)])
            if applied is not Applied.APPLIED or call.finished:
                return  # history only (a late step, or a step after the end)
            changed = CallStateEvent(call_id=str(call.call_id), state=twilio_spelling(status),
                                     source=CallStateSource.TWILIO, campaign=call.campaign_name)
            self.bus.publish(changed.TOPIC, changed)
            if status is CallStatus.IN_PROGRESS:
                await self.hooks.call_answered(call, now)
            if status.terminal:
                await self._finish(call, now)

    async def _finish(self, call: TrackedCall, now: datetime) -> None:
        if call.finished:
            return
        call.finished = True
        self._forget(call)
        await self.calls.set_result(call.call_id, outcome=_call_outcome(call),
                                    replace_outcome=call.opted_out)
        if not call.stream_started:  # the pipeline never saw it: count it here
            self.metrics.call_ended(_metric_outcome(call))
        outcome = attempt_outcome(call.timeline.status, call.answered_by, call.opted_out)
        await self.hooks.call_finished(call, outcome, LeadStatus.DNC if call.opted_out else None,
                                       now)

    async def _amd(self, event: AmdCallback) -> None:
        call = await self._resolve(event.call_sid)
        if call is None or call.finished:
            return
        async with call.lock:
            if call.answered_by is not None:
                return  # a repeat: the first result was acted on
            value = event.answered_by.strip().lower()
            call.answered_by = value
            known = value if value in AMD_RESULTS else "unknown"
            self.metrics.amd_result(known)
            await self.calls.set_result(call.call_id, amd_result=AmdResult(known))
            action = amd_action(value, call.settings.machine_policy)
            if action is AmdAction.HANG_UP:
                await self._hang_up(call, "answering_machine")
            elif action is AmdAction.LEAVE_VOICEMAIL and call.sid is not None:
                call.handed_off = "voicemail"
                text = call.settings.voicemail_message
                audio = await self.clips.url(text, str(call.call_id)) if self.clips else None
                message = voicemail_twiml(text, audio_url=audio)
                await self.twilio.redirect(call.sid, message)
                self._end_session(call, "voicemail")

    async def _recording(self, event: RecordingEvent) -> None:
        call = await self._resolve(event.call_sid)
        target = str(call.call_id) if call is not None else None
        # Ids and durations only: the audit log holds no personal data.
        await AuditRepository(self.db).append(
            "twilio", f"recording.{event.recording_status}"[:64], target_type="call",
            target_id=target, detail={"recording_sid": event.recording_sid,
                                      "duration_s": event.recording_duration_s,
                                      "channels": event.recording_channels})

    # -- the live call (pipeline side) ------------------------------------------------------------

    def on_call_started(self, info: CallInfo) -> None:
        call = self.get(info.call_id)
        if call is None:
            return  # a simulated call, or one this daemon did not place
        call.stream_started = True
        if call.sid is None and info.call_sid:
            call.sid = info.call_sid
            self._by_sid[info.call_sid] = call
        # The stream starts after the TwiML's consent announcement: now recording may start.
        if call.settings.record and call.sid is not None and call.recording_sid is None:
            self._spawn(self._start_recording(call), f"recording for call {call.call_id}")

    def on_turn(self, turn: TurnRecord) -> None:
        if turn.speaker != "caller":
            return
        match = detect_opt_out(turn.text)
        call = self.get(turn.call_id)
        if match is None or call is None or call.opted_out:
            return
        self._spawn(self.on_opt_out(turn.call_id, call.phone, source=DncChannel.SPOKEN,
                                    reason=f"opt-out phrase in call ({match.rule})"),
                    f"opt-out in call {turn.call_id}")

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Nothing for telephony."""

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        call = self.get(call_id)
        if call is None or call.finished or call.handed_off or call.hung_up:
            return
        # The conversation is over (the agent hung up or the stream broke): end the phone call
        # too, or the line would stay open with nobody on our side.
        self._spawn(self._hang_up(call, reason), f"hang-up of call {call_id}")

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """A key the caller pressed: the campaign's opt-out key opts out."""
        call = self.get(call_id)
        if call is not None and not call.opted_out and \
                is_opt_out_digit(digit, call.settings.opt_out_key):
            self._spawn(self.on_opt_out(call_id, call.phone, source=DncChannel.KEYPRESS,
                                        reason="opt-out key pressed in call"),
                        f"key-press opt-out in call {call_id}")

    async def on_opt_out(self, call_id: str, phone: str | None = None, *,
                         source: DncChannel = DncChannel.AGENT_TOOL,
                         reason: str = "asked not to be called in the call") -> None:
        """The caller asked not to be called again: the number joins the global DNC list and
        the call ends at once (47 CFR 64.1200(b)(3)). The pipeline's agent tool calls this."""
        call = self.get(call_id)
        number = phone or (call.phone if call is not None else None)
        if not number:
            raise ValidationError(f"call {call_id}: no phone number to add to the DNC list")
        await self.dnc.add(number, source=source, now=self.clock(), reason=reason)
        log.info("call %s: %s opted out (%s)", call_id, mask_phone(number), source)
        if call is None:
            return
        call.opted_out = True
        await self.calls.set_result(call.call_id, outcome=CallOutcome.OPTED_OUT,
                                    replace_outcome=True)
        await self._hang_up(call, "opted_out")

    async def transfer(self, call_id: str) -> TrackedCall:
        """Hand a live call to the campaign's human (`<Dial>` the transfer number)."""
        call = self.get(call_id)
        if call is None or call.sid is None or call.finished:
            raise NotFoundError(f"no live Twilio call {call_id}")
        number = call.settings.transfer_number
        if number is None:
            raise ValidationError(
                f"campaign {call.campaign_name!r} has no transfer_number: set it with "
                "`reautoctl campaign create NAME --set transfer_number=+1...`", code="no_transfer")
        twiml = transfer_twiml(number, caller_id=call.settings.caller_id or self.default_from,
                               timeout_s=TRANSFER_TIMEOUT_S, announcement=TRANSFER_ANNOUNCEMENT)
        call.handed_off = "transfer"
        await self.twilio.transfer(call.sid, twiml)
        self._end_session(call, "transferred")
        event = CallStateEvent(call_id=str(call.call_id), state="transferred",
                               source=CallStateSource.REAUTOD, campaign=call.campaign_name)
        self.bus.publish(event.TOPIC, event)
        return call

    async def _start_recording(self, call: TrackedCall) -> None:
        if call.sid is None:
            return
        call.recording_sid = await self.twilio.start_recording(
            call.sid, status_callback_url=self.validator.url_for(RECORDING_PATH))

    async def _hang_up(self, call: TrackedCall, reason: str) -> None:
        if call.hung_up:
            return
        call.hung_up = True
        self._end_session(call, reason)
        if call.sid is not None and not call.timeline.status.terminal:
            before_answer = call.timeline.status in (CallStatus.QUEUED, CallStatus.INITIATED,
                                                     CallStatus.RINGING) and not call.stream_started
            await self.twilio.hangup(call.sid, before_answer=before_answer)

    def _end_session(self, call: TrackedCall, reason: str) -> None:
        if self.live is None:
            return
        session = self.live.session(str(call.call_id))
        if session is not None:
            session.end(reason)
