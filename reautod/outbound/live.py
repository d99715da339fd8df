"""The telephony side of live calls: a `CallObserver` in the daemon's fan-out.

Recording starts once the consent announcement has played (the media stream starts after the
`<Say>`); a caller's opt-out (a phrase, the campaign's key, the agent's tool) becomes a DNC entry
and an immediate hang-up; when the conversation ends the phone line is hung up too. Calls end
through `HangUp`. Every callback is sync and cheap: the work goes to `BackgroundWork`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.campaigns.dnc import DncChannel, DncList, detect_opt_out, is_opt_out_digit
from reautod.errors import UnavailableError, ValidationError
from reautod.observability.logging import mask_phone
from reautod.outbound.calls import TrackedCall
from reautod.outbound.hangup import HangUp
from reautod.outbound.link import TwilioLink
from reautod.outbound.registry import CallRegistry
from reautod.outbound.work import BackgroundWork
from reautod.store.enums import CallOutcome
from reautod.store.repositories import CallRepository
from reautod.telephony.webhooks import RECORDING_PATH

log = logging.getLogger(__name__)


class LiveCallObserver:
    """Opt-outs, recordings and hang-ups of live Twilio calls (a `CallObserver`)."""

    def __init__(self, registry: CallRegistry, dnc: DncList, calls: CallRepository,
                 work: BackgroundWork, *, link: TwilioLink | None, hangup: HangUp | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._registry = registry
        self._dnc = dnc
        self._calls = calls
        self._work = work
        self._link = link
        self._hangup = hangup  # None without Twilio: there is no line to end
        self._clock = clock

    def on_call_started(self, info: CallInfo) -> None:
        call = self._registry.get(info.call_id)
        if call is None:
            return  # a simulated call, or one this daemon did not place
        call.stream_started = True
        if call.sid is None and info.call_sid:
            self._registry.learn_sid(call, info.call_sid)
        # The stream starts after the TwiML's consent announcement: now recording may start.
        if call.settings.record and call.sid is not None and call.recording_sid is None:
            self._work.spawn(self._start_recording(call), f"recording for call {call.call_id}")

    def on_turn(self, turn: TurnRecord) -> None:
        if turn.speaker != "caller":
            return
        match = detect_opt_out(turn.text)
        call = self._registry.get(turn.call_id)
        if match is None or call is None or call.opted_out:
            return
        self._work.spawn(self.on_opt_out(turn.call_id, call.phone, source=DncChannel.SPOKEN,
                                         reason=f"opt-out phrase in call ({match.rule})"),
                         f"opt-out in call {turn.call_id}")

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Nothing for telephony."""

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """Conversational states change nothing on the phone line."""

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        call = self._registry.get(call_id)
        if call is None or call.finished or call.handed_off or call.hung_up \
                or self._hangup is None:
            return
        # The conversation is over (the agent hung up or the stream broke): end the phone call
        # too, or the line would stay open with nobody on our side.
        self._work.spawn(self._hangup.hang_up(call, reason), f"hang-up of call {call_id}")

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """A key the caller pressed: the campaign's opt-out key opts out."""
        call = self._registry.get(call_id)
        if call is not None and not call.opted_out and \
                is_opt_out_digit(digit, call.settings.opt_out_key):
            self._work.spawn(self.on_opt_out(call_id, call.phone, source=DncChannel.KEYPRESS,
                                             reason="opt-out key pressed in call"),
                             f"key-press opt-out in call {call_id}")

    async def on_opt_out(self, call_id: str, phone: str | None = None, *,
                         source: DncChannel = DncChannel.AGENT_TOOL,
                         reason: str = "asked not to be called in the call") -> None:
        """The caller asked not to be called again: the number joins the global DNC list and
        the call ends at once (47 CFR 64.1200(b)(3)). The pipeline's agent tool calls this; a
        simulated call has no line to end, only its number (`phone`) to add."""
        call = self._registry.get(call_id)
        number = phone or (call.phone if call is not None else None)
        if not number:
            if self._link is None:
                raise UnavailableError("no Twilio call to end and no phone number given")
            raise ValidationError(f"call {call_id}: no phone number to add to the DNC list")
        await self._dnc.add(number, source=source, now=self._clock(), reason=reason)
        log.info("call %s: %s opted out (%s)", call_id, mask_phone(number), source)
        if call is None:
            return
        call.opted_out = True
        await self._calls.set_result(call.call_id, outcome=CallOutcome.OPTED_OUT,
                                     replace_outcome=True)
        if self._hangup is not None:
            await self._hangup.hang_up(call, "opted_out")

    async def _start_recording(self, call: TrackedCall) -> None:
        if call.sid is None or self._link is None:
            return
        call.recording_sid = await self._link.client.start_recording(
            call.sid, status_callback_url=self._link.validator.url_for(RECORDING_PATH))
