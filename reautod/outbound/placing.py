"""The one placing path: the dialer's leads and `reautoctl dial` alike go through `place_call`.

Whoever calls it has passed the dialer's gate (`Dialer.admit`: time zone, DNC, window, a call
slot, a calls-per-second token). It writes the call row, prepares the greeting while the phone
rings and creates the call at Twilio with the stream TwiML.

The call row has one writer, the write-behind queue: the placing path submits its records
there (as the pipeline's store observer does) and waits until the row is in before Twilio is
asked, so Twilio's callbacks and the cost meters find it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from reautod.call_events import CallStateEvent, CallStateSource
from reautod.campaigns.amd import MachinePolicy
from reautod.campaigns.dialer import LeadTarget
from reautod.campaigns.lead_queue import LeadClaim
from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.errors import OverloadedError, ReautodError, UnavailableError, ValidationError
from reautod.live_settings import LiveSettings
from reautod.observability.events import EventBus
from reautod.outbound.calls import LiveLine, TrackedCall
from reautod.outbound.twilio_side import TwilioSide
from reautod.store.enums import CallDirection, CallOutcome, CallStatus, CallTransport
from reautod.store.records import CallEnded, CallStarted, CallStatusChanged, Record
from reautod.store.repositories import CampaignRepository
from reautod.telephony.stream import MAX_OPENING_CHARS, MEDIA_PATH, Direction, StreamParameters
from reautod.telephony.twilio_client import MachineDetection, OutboundCall
from reautod.telephony.twiml import stream_twiml
from reautod.telephony.webhooks import AMD_PATH, STATUS_PATH, STREAM_ENDED_PATH

# A greeting prepared for a dialed call waits this long after the ring timeout for its stream
# (Twilio's queue at its calls-per-second, the create request, a recording announcement first);
# past that the call did not connect and its audio is dropped.
GREETING_MARGIN_S = 60.0
ROW_WAIT_S = 10.0  # how long a dial waits for its call row to be in the database


class RecordWriter(Protocol):
    """The write-behind queue (reautod.store.writebehind.WriteBehind), as placing needs it."""

    def submit(self, record: Record) -> bool: ...

    async def flush(self, timeout: float | None = None) -> None: ...


class CallPlacer:
    """The dialer's `CallPlacer`, and the one path every outbound call is placed by."""

    def __init__(self, live: LiveSettings, twilio: TwilioSide, campaigns: CampaignRepository,
                 writer: RecordWriter, bus: EventBus, *, line: LiveLine | None,
                 clock: Callable[[], datetime]) -> None:
        self._live = live  # the holder: openings follow a reload
        self._twilio = twilio
        self._campaigns = campaigns
        self._writer = writer
        self._bus = bus
        self._line = line
        self._clock = clock

    def opening_for(self, settings: CampaignSettings) -> str:
        """A campaign's opening as its calls carry it; ValidationError when it cannot fit."""
        current = self._live.current
        text = settings.render_opening(current.agent, current.twilio.from_number)
        if len(text) > MAX_OPENING_CHARS:
            raise ValidationError(
                f"the call opening is {len(text)} characters once rendered; a Twilio stream "
                f"parameter carries at most {MAX_OPENING_CHARS}: shorten opening (or "
                "agent.greeting) or business_name", code="opening_too_long")
        return text

    async def place(self, claim: LeadClaim, target: LeadTarget) -> None:
        """`CallPlacer` of the dialer: a claimed lead's call."""
        self._twilio.require()
        campaign = await self._campaigns.get(claim.campaign_id)
        settings = settings_of(campaign)
        call = TrackedCall(uuid.uuid4(), target.phone, CallDirection.OUTBOUND, campaign.id,
                           campaign.name, settings, claim.lead_id, claim.contact_id)
        await self.place_call(call, target.name)

    async def place_call(self, call: TrackedCall, lead_name: str) -> str:
        """Write the call row, create the call at Twilio, remember its sid; returns the sid."""
        link = self._twilio.require()
        registry = self._twilio.registry
        settings = call.settings
        caller_id = settings.caller_id or link.from_number
        # as the media socket reads it back (parse_start), so the prepared greeting matches
        lead = lead_name[:200].strip()
        opening = self.opening_for(settings)
        twiml = stream_twiml(
            link.validator.websocket_url(MEDIA_PATH),
            StreamParameters(call_id=str(call.call_id), campaign=call.campaign_name[:200],
                             lead_name=lead, direction=Direction.OUTBOUND, opening=opening),
            announcement=settings.recording_announcement if settings.record else None,
            action_url=link.validator.url_for(STREAM_ENDED_PATH),  # resume after a crash
        )
        request = OutboundCall(
            to=call.phone, from_=caller_id, twiml=twiml,
            status_callback_url=link.validator.url_for(STATUS_PATH),
            amd_callback_url=link.validator.url_for(AMD_PATH),
            machine_detection=machine_detection(settings.machine_policy),
            ring_timeout_s=settings.ring_timeout_s, time_limit_s=settings.time_limit_s,
        )
        request.validate()
        started = CallStarted(
            call_id=call.call_id, created_at=self._clock(), direction=CallDirection.OUTBOUND,
            transport=CallTransport.TWILIO, status=CallStatus.QUEUED,
            campaign_id=call.campaign_id, contact_id=call.contact_id, lead_id=call.lead_id,
            from_number=caller_id, to_number=call.phone,
        )
        await self._write_row(call, started)
        await registry.expect(call)
        if self._line is not None:
            # the greeting's TTS runs while Twilio creates the call and the phone rings
            self._line.prepare_greeting(str(call.call_id), lead_name=lead, opening=opening,
                                        expires_in_s=settings.ring_timeout_s
                                        + GREETING_MARGIN_S, campaign=call.campaign_name)
        try:
            created = await link.client.create(request)
        except BaseException as err:
            if self._line is not None:
                self._line.drop_greeting(str(call.call_id))
            await registry.created(call, None)  # callbacks stop waiting for it
            if isinstance(err, ReautodError):
                self._failed(call, err.code)
            raise
        sid = created.sid
        await registry.created(call, sid)
        # status QUEUED again: only the sid is filled in, no timeline point is added
        self._writer.submit(CallStarted(call_id=call.call_id, created_at=started.created_at,
                                        status=CallStatus.QUEUED, call_sid=sid))
        event = CallStateEvent(call_id=str(call.call_id), state=CallStatus.QUEUED.value,
                               source=CallStateSource.REAUTOD, campaign=call.campaign_name)
        self._bus.publish(event.TOPIC, event)
        return sid

    async def _write_row(self, call: TrackedCall, started: CallStarted) -> None:
        """Queue the call's row and wait until it is in (Twilio is asked only then)."""
        if not self._writer.submit(started):
            raise OverloadedError("the store's write queue is full: not dialing now",
                                  code="store_busy")
        try:
            await self._writer.flush(ROW_WAIT_S)
        except TimeoutError:
            self._failed(call, "store_unavailable")  # written after the row, when it is
            raise UnavailableError("the call's row could not be written: not dialing",
                                   code="store_unavailable") from None

    def _failed(self, call: TrackedCall, code: str) -> None:
        """The call was never placed: its row ends failed, with why (through the queue, after
        the row)."""
        now = self._clock()
        self._writer.submit(CallStatusChanged(call.call_id, CallStatus.FAILED, now,
                                              source="reautod", detail={"error": code}))
        self._writer.submit(CallEnded(call.call_id, now, status=CallStatus.FAILED,
                                      outcome=CallOutcome.FAILED, error_code=code))


def machine_detection(policy: MachinePolicy) -> MachineDetection:
    """Twilio's answering-machine detection for a campaign's machine policy: leaving a voicemail
    needs Twilio to wait for the beep; hanging up wants a fast answer."""
    if policy is MachinePolicy.VOICEMAIL:
        return MachineDetection.DETECT_MESSAGE_END
    return MachineDetection.ENABLE
