"""`reautoctl dial`: one number now, through the dialer's own gate and the one placing path.

The erasure register and the budget first, then `Dialer.admit` (time zone, DNC, window, a call
slot, a calls-per-second token: it waits for the token rather than refusing an operator for
it), then `CallPlacer.place_call`. The call holds its slot until it is over.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime

import phonenumbers
from phonenumbers import timezone as number_timezone

from reautod.campaigns.dialer import Dialer, ErasedNumbers, LeadTarget, NotAdmitted
from reautod.campaigns.dnc import normalize_phone
from reautod.campaigns.leads_import import state_of_number
from reautod.campaigns.results import DialResult
from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.errors import ValidationError
from reautod.observability.logging import mask_phone
from reautod.observability.metrics import Metrics
from reautod.outbound.calls import LiveLine, TrackedCall
from reautod.outbound.outcomes import ManualSlots
from reautod.outbound.placing import CallPlacer
from reautod.outbound.refusals import count_refusal, dial_refused
from reautod.outbound.twilio_side import TwilioSide
from reautod.store.database import Database
from reautod.store.enums import CallDirection
from reautod.store.repositories import CampaignRepository, ContactInput, ContactRepository

# the concurrency slot of dials outside any campaign (the box's limit still applies)
MANUAL_SLOT = "manual"


class ManualDial:
    """One operator's dial (the `dial` control method)."""

    def __init__(self, db: Database, dialer: Dialer, placer: CallPlacer, slots: ManualSlots,
                 twilio: TwilioSide, metrics: Metrics, *, line: LiveLine | None,
                 erased: ErasedNumbers | None, clock: Callable[[], datetime],
                 monotonic: Callable[[], float]) -> None:
        self._db = db
        self._campaigns = CampaignRepository(db)
        self._dialer = dialer
        self._placer = placer
        self._slots = slots
        self._twilio = twilio
        self._metrics = metrics
        self._line = line
        self._erased = erased
        self._clock = clock
        self._monotonic = monotonic

    async def admit_now(self, target: LeadTarget, slot: str, campaign_id: uuid.UUID | None,
                        settings: CampaignSettings) -> NotAdmitted | None:
        """The dialer's gate for one number now; waits for a calls-per-second token rather than
        refusing an operator for it (at most a second at Twilio's default rate)."""
        while True:
            refused = await self._dialer.admit(
                target, slot=slot, campaign_id=campaign_id, window=settings.window(),
                max_concurrent=settings.max_concurrent, now=self._clock(),
                monotonic=self._monotonic())
            if refused is None or refused.rule_code != "calls_per_second":
                return refused
            await asyncio.sleep(self._dialer.bucket.wait_s(self._monotonic()))

    async def dial(self, number: str, campaign_name: str | None) -> DialResult:
        campaign = await self._campaigns.find(campaign_name) if campaign_name else None
        settings = settings_of(campaign) if campaign else CampaignSettings()
        phone = normalize_phone(number, settings.default_region)
        # an erased number is refused first, whatever else would stop the dial
        if self._erased is not None and await self._erased.is_erased(phone):
            self._metrics.dial_blocked("dnc")
            raise ValidationError(f"{mask_phone(phone)} was erased on its owner's request: it is "
                                  "never dialed again", code="erased")
        self._twilio.require()
        if self._line is not None:
            self._line.check_admission()
        budget = self._dialer.budget
        refusal = await budget.check_dial(campaign.id if campaign else None) if budget else None
        if refusal is not None:
            self._metrics.dial_blocked("budget")
            raise ValidationError(f"over budget ({refusal.rule_code}): {refusal.detail}",
                                  code="budget")
        contacts = ContactRepository(self._db)
        contact = await contacts.by_phone(phone)
        parsed = phonenumbers.parse(phone, None)
        zones = [z for z in number_timezone.time_zones_for_number(parsed)
                 if z != number_timezone.UNKNOWN_TIMEZONE]
        zone = (contact.timezone if contact and contact.timezone
                else zones[0] if len(zones) == 1 else None)
        stored_state = contact.custom.get("state") if contact else None
        state = (stored_state if isinstance(stored_state, str)
                 else await asyncio.to_thread(state_of_number, parsed))  # geodata loads once, slowly
        # the dialer's own gate: time zone, DNC, window, a call slot, a calls-per-second token
        slot = str(campaign.id) if campaign else MANUAL_SLOT
        target = LeadTarget(phone, zone, state if isinstance(state, str) else None,
                            contact.name or "" if contact else "")
        refused = await self.admit_now(target, slot, campaign.id if campaign else None, settings)
        if refused is not None:
            count_refusal(self._metrics, refused.reason)
            raise dial_refused(refused, mask_phone(phone))
        call = TrackedCall(uuid.uuid4(), phone, CallDirection.OUTBOUND,
                           campaign.id if campaign else None,
                           campaign.name if campaign else "manual", settings)
        self._slots.hold(call.call_id, slot)  # released when the call is over
        try:
            if contact is None:
                contact = await contacts.upsert(ContactInput(phone_e164=phone, timezone=zone,
                                                             source="reautoctl dial"))
            call.contact_id = contact.id
            sid = await self._placer.place_call(call, target.name)
        except BaseException:
            self._slots.release(call.call_id)
            raise
        return DialResult(call_id=call.call_id, call_sid=sid, to=phone,
                          campaign=call.campaign_name)
