"""What the tracker tells the dialer about calls it placed, and the call slots of manual dials."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from reautod.campaigns.dialer import CampaignPlan, Dialer
from reautod.campaigns.pacing import ConcurrencyLimiter, Outcome
from reautod.outbound.calls import LiveLine, TrackedCall
from reautod.store.enums import LeadStatus
from reautod.telephony.state_machine import twilio_spelling

log = logging.getLogger(__name__)

# told (call id, Twilio's final status) of a call that ended with no conversation (no answer,
# busy, a machine): no pipeline observer heard it (the integrations' results)
EndedUnconnected = Callable[[str, str], None]


class DialerHooks(Protocol):
    """What the tracker tells the dialer about calls it placed."""

    async def call_answered(self, call: TrackedCall, now: datetime) -> None: ...

    async def call_finished(self, call: TrackedCall, outcome: Outcome,
                            final_status: LeadStatus | None, now: datetime) -> None: ...


class ManualSlots:
    """Call slots the dialer's gate gave calls outside the lead queue (`reautoctl dial`), held
    until each call is over."""

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self._limiter = limiter
        self._slots: dict[uuid.UUID, str] = {}  # by call id

    def hold(self, call_id: uuid.UUID, slot: str) -> None:
        self._slots[call_id] = slot

    def release(self, call_id: uuid.UUID) -> None:
        """Give back the slot of such a call (once; calls of the lead queue have none here)."""
        slot = self._slots.pop(call_id, None)
        if slot is not None:
            self._limiter.release(slot)


class DialOutcomes:
    """`DialerHooks`: an answered call and a finished one reach the dialer (the lead's next
    attempt, its slot), the greeting prepared for a call that never connected is dropped."""

    def __init__(self, dialer: Dialer, slots: ManualSlots, *, line: LiveLine | None,
                 ended_unconnected: EndedUnconnected | None = None) -> None:
        self._dialer = dialer
        self._slots = slots
        self._line = line
        self._ended_unconnected = ended_unconnected

    async def call_answered(self, call: TrackedCall, now: datetime) -> None:
        if call.lead_id is not None:
            await self._dialer.call_answered(call.lead_id, now)

    async def call_finished(self, call: TrackedCall, outcome: Outcome,
                            final_status: LeadStatus | None, now: datetime) -> None:
        if self._line is not None:
            # no answer, busy, a machine hung up on: the greeting prepared for it goes (a call
            # whose stream started took its greeting already)
            self._line.drop_greeting(str(call.call_id))
        if not call.stream_started and self._ended_unconnected is not None:
            self._ended_unconnected(str(call.call_id), twilio_spelling(call.timeline.status))
        self._slots.release(call.call_id)
        if call.lead_id is None or call.campaign_id is None:
            return
        status = await self._dialer.call_ended(CampaignPlan.of(call.campaign_id, call.settings),
                                               call.lead_id, outcome, final_status, now)
        if status is not None:
            log.info("lead %s after call %s: %s", call.lead_id, call.call_id, status)
