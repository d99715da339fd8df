"""How outbound ends a call: the pipeline's session, and the phone line at Twilio."""

from __future__ import annotations

from reautod.outbound.calls import LiveLine, TrackedCall
from reautod.store.enums import CallStatus
from reautod.telephony.twilio_client import TwilioCalls


class HangUp:
    """The one way the tracker (AMD, voicemail) and the live-call observer (opt-out, the end
    of the conversation) end a call."""

    def __init__(self, client: TwilioCalls, line: LiveLine | None) -> None:
        self._client = client
        self._line = line

    async def hang_up(self, call: TrackedCall, reason: str) -> None:
        """End the session and the phone call (once; a finished call is left alone)."""
        if call.hung_up:
            return
        call.hung_up = True
        self.end_session(call, reason)
        if call.sid is not None and not call.timeline.status.terminal:
            before_answer = call.timeline.status in (CallStatus.QUEUED, CallStatus.INITIATED,
                                                     CallStatus.RINGING) and not call.stream_started
            await self._client.hangup(call.sid, before_answer=before_answer)

    def end_session(self, call: TrackedCall, reason: str) -> None:
        """End the call's media session, if one is live; the phone line stays (a handoff)."""
        if self._line is None:
            return
        session = self._line.session(str(call.call_id))
        if session is not None:
            session.end(reason)
