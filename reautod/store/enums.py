"""The closed vocabularies stored as check-constrained text; one StrEnum per column kind."""

from __future__ import annotations

from enum import StrEnum


class ConsentStatus(StrEnum):
    UNKNOWN = "unknown"
    GRANTED = "granted"
    REVOKED = "revoked"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class LeadStatus(StrEnum):
    NEW = "new"
    RETRY = "retry"
    CALLBACK = "callback"  # the lead asked to be called back at next_attempt_at
    DIALING = "dialing"
    IN_CALL = "in_call"
    QUALIFIED = "qualified"
    NOT_QUALIFIED = "not_qualified"
    BOOKED = "booked"
    NOT_INTERESTED = "not_interested"
    DNC = "dnc"
    EXHAUSTED = "exhausted"
    FAILED = "failed"


# Leads the dialer may pick up when their next_attempt_at has come.
DUE_LEAD_STATUSES = (LeadStatus.NEW, LeadStatus.RETRY, LeadStatus.CALLBACK)


class CallDirection(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class CallTransport(StrEnum):
    TWILIO = "twilio"
    WEBRTC = "webrtc"
    SOUNDDEVICE = "sounddevice"
    SIMULATED = "simulated"


class CallStatus(StrEnum):
    """Twilio's call statuses (with `_` for `-`); the rank orders the lifecycle."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        return _CALL_STATUS_RANK[self]

    @property
    def terminal(self) -> bool:
        return self.rank == TERMINAL_RANK


TERMINAL_RANK = 4
_CALL_STATUS_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    CallStatus.COMPLETED: TERMINAL_RANK,
    CallStatus.BUSY: TERMINAL_RANK,
    CallStatus.NO_ANSWER: TERMINAL_RANK,
    CallStatus.FAILED: TERMINAL_RANK,
    CallStatus.CANCELED: TERMINAL_RANK,
}


class AmdResult(StrEnum):
    HUMAN = "human"
    MACHINE_START = "machine_start"
    MACHINE_END_BEEP = "machine_end_beep"
    MACHINE_END_SILENCE = "machine_end_silence"
    MACHINE_END_OTHER = "machine_end_other"
    FAX = "fax"
    UNKNOWN = "unknown"


class CallOutcome(StrEnum):
    """How a call ended. The conversation decides the first eight (reautod.dialogue.Outcome);
    telephony decides no_answer, failed and voicemail where no conversation happened."""

    QUALIFIED = "qualified"
    NOT_QUALIFIED = "not_qualified"
    BOOKED = "booked"
    CALLBACK = "callback"
    NOT_INTERESTED = "not_interested"
    OPTED_OUT = "opted_out"
    WRONG_PERSON = "wrong_person"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    UNKNOWN = "unknown"


# Outcomes counted as "qualified" in the analytics (a booking implies qualification).
QUALIFIED_OUTCOMES = (CallOutcome.QUALIFIED, CallOutcome.BOOKED)


class AttemptResult(StrEnum):
    PENDING = "pending"
    DIALED = "dialed"
    SKIPPED_WINDOW = "skipped_window"
    SKIPPED_DNC = "skipped_dnc"
    SKIPPED_BUDGET = "skipped_budget"
    FAILED = "failed"


class Speaker(StrEnum):
    AGENT = "agent"
    CALLER = "caller"
    SYSTEM = "system"


class RecordingDirection(StrEnum):
    INBOUND = "inbound"  # the caller's voice
    OUTBOUND = "outbound"  # the agent's voice


class RecordingFormat(StrEnum):
    WAV = "wav"
    OGG = "ogg"


class RecordingStatus(StrEnum):
    FINAL = "final"
    DELETED = "deleted"


class CostService(StrEnum):
    TELEPHONY = "telephony"
    STT = "stt"
    LLM = "llm"
    TTS = "tts"
    AMD = "amd"
    RECORDING = "recording"
    OTHER = "other"


class CostUnit(StrEnum):
    SECONDS = "seconds"
    MINUTES = "minutes"
    TOKENS = "tokens"
    CHARACTERS = "characters"
    REQUESTS = "requests"


class BudgetPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO weeks: Monday 00:00 in the budget's time zone
    MONTH = "month"
    TOTAL = "total"  # all spend of its scope: never rolls over


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


class DecisionStatus(StrEnum):
    """What became of a tool the agent used."""

    DONE = "done"  # carried out
    PROPOSED = "proposed"  # checked by code and put to the caller for confirmation
    REFUSED = "refused"  # a check failed (slot taken, outside hours, not allowed in the stage)
    FAILED = "failed"  # the tool raised (store down, calendar error)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    DEAD = "dead"


class OutboxChannel(StrEnum):
    """How an outbox message travels: a signed webhook, a booking confirmation (SMS, email), or
    a row for the Google Sheets results sheet."""

    WEBHOOK = "webhook"
    SMS = "sms"
    EMAIL = "email"
    SHEETS = "sheets"


class DncSource(StrEnum):
    REQUEST = "request"  # the person asked during a call
    IMPORT = "import"
    REGISTRY = "registry"  # a national do-not-call list
    MANUAL = "manual"


class BudgetAlertKind(StrEnum):
    THRESHOLD = "threshold"  # spend crossed a configured share of the cap
    FORECAST = "forecast"  # the projected period-end spend crossed the cap


class VoiceTier(StrEnum):
    """Which text-to-speech tier speaks: the local voice, or the premium (paid) one."""

    LOCAL = "local"
    PREMIUM = "premium"


class PrivacyRequestKind(StrEnum):
    EXPORT = "export"  # access / portability
    ERASE = "erase"


class PrivacyRegime(StrEnum):
    GDPR = "gdpr"
    UK_GDPR = "uk_gdpr"
    CCPA = "ccpa"


class PrivacyRequestStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    FAILED = "failed"


class CredentialKind(StrEnum):
    TOKEN = "token"  # a JWT for a person or script, short-lived; the row only tracks its jti
    API_KEY = "api_key"  # a machine client's long-lived key; the row holds its hash
    # exchanged once for a new access token and refresh token (rotation); the row holds its hash
    REFRESH = "refresh"
