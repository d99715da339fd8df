"""What outbound knows of one Twilio call while it lasts, and the small interfaces it needs."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from reautod.campaigns.settings import CampaignSettings
from reautod.store.enums import CallDirection, CallOutcome, CallStatus
from reautod.telephony.state_machine import CallTimeline
from reautod.telephony.stream import CloseCode

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


class LiveSession(Protocol):
    def end(self, reason: str, close_code: int = CloseCode.NORMAL) -> None: ...


class LiveLine(Protocol):
    """The call manager, as far as outbound needs it: admission, live sessions, greetings."""

    def check_admission(self) -> None: ...

    def session(self, call_id: str) -> LiveSession | None: ...

    def prepare_greeting(self, call_id: str, *, lead_name: str, opening: str | None,
                         expires_in_s: float, campaign: str | None = None) -> None: ...

    def drop_greeting(self, call_id: str) -> None: ...


def metric_outcome(call: TrackedCall) -> str:
    """The `calls_ended` label of a call no pipeline counted."""
    status = call.timeline.status
    if status is CallStatus.NO_ANSWER:
        return "no_answer"
    if status in (CallStatus.BUSY, CallStatus.FAILED, CallStatus.CANCELED):
        return status.value
    return "voicemail" if call.handed_off == "voicemail" else "completed"


def call_outcome(call: TrackedCall) -> CallOutcome:
    """Telephony's outcome of a finished call (a conversation's own outcome is the dialogue's)."""
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
