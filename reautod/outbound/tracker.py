"""Call tracking from Twilio's webhooks: the store-backed `WebhookHandler`.

Twilio's status callbacks are folded into each call's `CallTimeline` and what the timeline
accepts (APPLIED or LATE) is persisted; AMD results are acted on per the campaign's machine
policy (a voicemail plays in the agent's own voice: telephony.clips); callers who ring us are
answered; recording callbacks go to the audit log; a call whose final callback never came is
swept.

Webhook methods return at once: the work goes to `BackgroundWork`, serialised per call by a
lock so callbacks for one call apply in arrival order (the timeline orders them by
SequenceNumber anyway).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from reautod.call_events import CallStateEvent, CallStateSource
from reautod.campaigns.amd import AmdAction, amd_action, attempt_outcome
from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.observability.events import EventBus
from reautod.observability.metrics import AMD_RESULTS, Metrics
from reautod.outbound.calls import TrackedCall, call_outcome, metric_outcome
from reautod.outbound.hangup import HangUp
from reautod.outbound.link import TwilioLink
from reautod.outbound.outcomes import DialerHooks
from reautod.outbound.registry import CallRegistry
from reautod.outbound.work import BackgroundWork
from reautod.store.database import Database
from reautod.store.enums import (
    AmdResult,
    CallDirection,
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
from reautod.telephony.state_machine import (
    Applied,
    StatusEvent,
    parse_status,
    twilio_spelling,
)
from reautod.telephony.twiml import voicemail_twiml
from reautod.telephony.webhooks import (
    AmdCallback,
    InboundAnswer,
    LeadMatch,
    RecordingEvent,
    StatusCallback,
    VoiceRequest,
    to_e164,
)

log = logging.getLogger(__name__)


class InboundCalls(Protocol):
    """How callers who ring us are answered: the agent's first words, and a lead for a caller
    who is none yet."""

    def inbound_opening(self, settings: CampaignSettings) -> str | None:
        """The campaign's rendered inbound greeting, or None (the caller speaks first)."""
        ...

    async def inbound_lead(self, phone: str) -> LeadMatch | None:
        """A new lead for a caller who is no lead (the inbound campaign's); None: not taken."""
        ...


class CallTracker:
    """The store-backed `WebhookHandler` of every Twilio call."""

    def __init__(
        self,
        db: Database,
        registry: CallRegistry,
        link: TwilioLink,
        hooks: DialerHooks,
        hangup: HangUp,
        work: BackgroundWork,
        *,
        metrics: Metrics,
        bus: EventBus,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        inbound: InboundCalls | None = None,
        clips: SpokenClips | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.link = link
        self.hooks = hooks
        self.hangup = hangup
        self.work = work
        self.metrics = metrics
        self.bus = bus
        self.clock = clock
        self.inbound = inbound
        self.clips = clips  # the voicemail in the agent's voice
        self.calls = CallRepository(db)

    # -- bookkeeping ------------------------------------------------------------------------------

    def tracked(self) -> list[TrackedCall]:
        return self.registry.tracked()

    def get(self, call_id: str | uuid.UUID) -> TrackedCall | None:
        return self.registry.get(call_id)

    async def settle(self) -> None:
        """Wait until the work handed over so far (and what it handed on) is done."""
        await self.work.settle()

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
        known = self.registry.by_sid(call.call_sid)
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
        self.registry.add(tracked)
        record = CallStarted(call_id=tracked.call_id, created_at=self.clock(),
                             direction=CallDirection.INBOUND, transport=CallTransport.TWILIO,
                             status=CallStatus.RINGING, campaign_id=campaign.id,
                             contact_id=contact.id, lead_id=lead_row.id, call_sid=call.call_sid,
                             from_number=contact.phone_e164, to_number=to_e164(call.to))
        self.work.spawn(self.calls.write([record]), f"inbound call {call.call_sid}")
        return self._answer(tracked, lead.name)

    def _answer(self, call: TrackedCall, name: str) -> InboundAnswer:
        announcement = call.settings.recording_announcement if call.settings.record else None
        opening = self.inbound.inbound_opening(call.settings) if self.inbound else None
        return InboundAnswer(str(call.call_id), call.campaign_name, name, announcement, opening)

    async def on_status(self, event: StatusCallback) -> None:
        self.work.spawn(self._status(event), f"status callback for {event.call_sid}")

    async def on_amd(self, event: AmdCallback) -> None:
        self.work.spawn(self._amd(event), f"AMD result for {event.call_sid}")

    async def on_recording(self, event: RecordingEvent) -> None:
        self.work.spawn(self._recording(event), f"recording callback for {event.call_sid}")

    async def _status(self, event: StatusCallback) -> None:
        call = await self.registry.resolve(event.call_sid)
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
        self.registry.forget(call)
        await self.calls.set_result(call.call_id, outcome=call_outcome(call),
                                    replace_outcome=call.opted_out)
        if not call.stream_started:  # the pipeline never saw it: count it here
            self.metrics.call_ended(metric_outcome(call))
        outcome = attempt_outcome(call.timeline.status, call.answered_by, call.opted_out)
        await self.hooks.call_finished(call, outcome, LeadStatus.DNC if call.opted_out else None,
                                       now)

    async def _amd(self, event: AmdCallback) -> None:
        call = await self.registry.resolve(event.call_sid)
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
                await self.hangup.hang_up(call, "answering_machine")
            elif action is AmdAction.LEAVE_VOICEMAIL and call.sid is not None:
                call.handed_off = "voicemail"
                text = call.settings.voicemail_message
                audio = await self.clips.url(text, str(call.call_id)) if self.clips else None
                message = voicemail_twiml(text, audio_url=audio)
                await self.link.client.redirect(call.sid, message)
                self.hangup.end_session(call, "voicemail")

    async def _recording(self, event: RecordingEvent) -> None:
        call = await self.registry.resolve(event.call_sid)
        target = str(call.call_id) if call is not None else None
        # Ids and durations only: the audit log holds no personal data.
        await AuditRepository(self.db).append(
            "twilio", f"recording.{event.recording_status}"[:64], target_type="call",
            target_id=target, detail={"recording_sid": event.recording_sid,
                                      "duration_s": event.recording_duration_s,
                                      "channels": event.recording_channels})
