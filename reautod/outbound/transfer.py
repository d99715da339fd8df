"""Handing a live Twilio call to the campaign's human (`<Dial>` the transfer number)."""

from __future__ import annotations

from reautod.call_events import CallStateEvent, CallStateSource
from reautod.errors import NotFoundError, ValidationError
from reautod.observability.events import EventBus
from reautod.outbound.calls import TrackedCall
from reautod.outbound.link import TwilioLink
from reautod.outbound.registry import CallRegistry
from reautod.telephony.twiml import transfer_twiml

TRANSFER_ANNOUNCEMENT = "Please hold while I transfer you."
TRANSFER_TIMEOUT_S = 30


class Transfers:
    """The pipeline's `CallHandoff` (reautod.conversation) and `call.transfer`'s Twilio side.

    It does not end the call's media session: on success the pipeline ends it with the
    Transfer's reason, and `call.transfer` ends it through the hang-up interface."""

    def __init__(self, registry: CallRegistry, link: TwilioLink | None, bus: EventBus) -> None:
        self._registry = registry
        self._link = link
        self._bus = bus

    async def transfer(self, call_id: str, to: str | None) -> None:
        """`CallHandoff`: the agent's transfer bridges the call to its campaign's human (`to`,
        when given, is that number: the agent reads it from the same campaign). NotFoundError
        for a call that is not a live Twilio call (a simulated one), ValidationError (code
        no_transfer) without a transfer number."""
        await self.transfer_call(call_id)

    async def transfer_call(self, call_id: str) -> TrackedCall:
        """Bridge a live call to the campaign's transfer number; returns the call."""
        call = self._registry.get(call_id)
        if call is None or call.sid is None or call.finished or self._link is None:
            raise NotFoundError(f"no live Twilio call {call_id}")
        number = call.settings.transfer_number
        if number is None:
            raise ValidationError(
                f"campaign {call.campaign_name!r} has no transfer_number: set it with "
                "`reautoctl campaign create NAME --set transfer_number=+1...`", code="no_transfer")
        twiml = transfer_twiml(number,
                               caller_id=call.settings.caller_id or self._link.from_number,
                               timeout_s=TRANSFER_TIMEOUT_S, announcement=TRANSFER_ANNOUNCEMENT)
        call.handed_off = "transfer"
        await self._link.client.transfer(call.sid, twiml)
        event = CallStateEvent(call_id=str(call.call_id), state="transferred",
                               source=CallStateSource.REAUTOD, campaign=call.campaign_name)
        self._bus.publish(event.TOPIC, event)
        return call
