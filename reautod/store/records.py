"""Typed records the call pipeline hands to the write-behind queue, and their spool wire form.

Every record names the rows it writes by client-generated ids (or natural keys such as
(call_id, seq)), so applying it twice changes nothing: that is what makes retries and spool
replays safe.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from reautod.errors import ValidationError
from reautod.store.enums import (
    AmdResult,
    CallDirection,
    CallOutcome,
    CallStatus,
    CallTransport,
    CostService,
    CostUnit,
    DecisionStatus,
    LeadStatus,
    RecordingDirection,
    RecordingFormat,
    Speaker,
    VoiceTier,
)


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValidationError(f"{name} must be timezone-aware (UTC)")


@dataclass(frozen=True)
class CallStarted:
    """A call exists: creates the call row (or fills in SIDs a webhook did not know yet)."""

    kind: ClassVar[str] = "call_started"
    call_id: uuid.UUID
    created_at: datetime
    direction: CallDirection = CallDirection.OUTBOUND
    transport: CallTransport = CallTransport.TWILIO
    status: CallStatus = CallStatus.INITIATED
    campaign_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = None
    call_sid: str | None = None
    stream_sid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    prompt_version: str | None = None
    # the campaign by name, when the caller knows no id (a simulated call's --campaign): the
    # row joins that campaign if one has the name, so its report and budgets count the call
    campaign_name: str | None = None

    def __post_init__(self) -> None:
        _aware("created_at", self.created_at)


@dataclass(frozen=True)
class CallStatusChanged:
    """One point of the status timeline; the call's status only ever moves forward."""

    kind: ClassVar[str] = "call_status"
    call_id: uuid.UUID
    status: CallStatus
    at: datetime
    source: str = "pipeline"
    sequence: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _aware("at", self.at)


@dataclass(frozen=True)
class TurnSpoken:
    """One utterance of the agent or the caller, with its per-stage latencies in ms."""

    kind: ClassVar[str] = "turn"
    turn_id: uuid.UUID
    call_id: uuid.UUID
    seq: int
    speaker: Speaker
    text: str
    started_at: datetime
    ended_at: datetime | None = None
    agent: str | None = None
    stt_confidence: float | None = None
    interrupted: bool = False
    stt_ms: int | None = None
    llm_first_token_ms: int | None = None
    llm_ms: int | None = None
    tts_first_byte_ms: int | None = None
    response_ms: int | None = None

    def __post_init__(self) -> None:
        _aware("started_at", self.started_at)
        _aware("ended_at", self.ended_at)
        if self.seq < 0:
            raise ValidationError("turn seq must be >= 0")


@dataclass(frozen=True)
class AgentTransitionRecord:
    kind: ClassVar[str] = "agent_transition"
    transition_id: uuid.UUID
    call_id: uuid.UUID
    seq: int
    to_agent: str
    at: datetime
    from_agent: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        _aware("at", self.at)


@dataclass(frozen=True)
class ScoreUpdate:
    """A new lead score (0-100): appended to the history and copied onto the lead."""

    kind: ClassVar[str] = "score"
    score_id: uuid.UUID
    score: int
    at: datetime
    call_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = None
    factors: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if not 0 <= self.score <= 100:
            raise ValidationError(f"score {self.score} is outside 0..100")


@dataclass(frozen=True)
class PlaybookAssigned:
    """The playbook version and A/B variant a call runs; submit it after the call's CallStarted."""

    kind: ClassVar[str] = "playbook_assigned"
    call_id: uuid.UUID
    playbook: str
    prompt_version: str  # label@hash
    variant: str

    def __post_init__(self) -> None:
        if not self.playbook or len(self.playbook) > 64 or len(self.prompt_version) > 64:
            raise ValidationError("playbook and prompt_version must be 1-64 characters")
        if not 0 < len(self.variant) <= 48:
            raise ValidationError("variant must be 1-48 characters")


@dataclass(frozen=True)
class CallOutcomeDecided:
    """What the conversation settled at the call's end: the call's outcome and disposition (they
    replace telephony's `unknown`, never an opt-out), the campaign it ran for (a simulated
    call's row has none), and the lead's final status when the outcome gives one (its lease
    ends with it, so the dialer's release cannot overwrite it)."""

    kind: ClassVar[str] = "call_outcome"
    call_id: uuid.UUID
    outcome: CallOutcome
    disposition: str
    at: datetime
    lead_status: LeadStatus | None = None
    lead_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if self.lead_status is not None and self.lead_id is None:
            raise ValidationError("a lead status needs the lead")


@dataclass(frozen=True)
class AgentDecisionRecord:
    """A tool the agent used (or was refused), with its arguments and the evidence it rests on."""

    kind: ClassVar[str] = "agent_decision"
    decision_id: uuid.UUID
    call_id: uuid.UUID
    seq: int
    stage: str
    tool: str
    status: DecisionStatus
    at: datetime
    args: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    detail: str | None = None

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if self.seq < 0:
            raise ValidationError("decision seq must be >= 0")


@dataclass(frozen=True)
class CallEnded:
    """The call is over: final status, outcome and durations (terminal status joins the timeline)."""

    kind: ClassVar[str] = "call_ended"
    call_id: uuid.UUID
    ended_at: datetime
    status: CallStatus = CallStatus.COMPLETED
    outcome: CallOutcome | None = None
    disposition: str | None = None
    amd_result: AmdResult | None = None
    answered_at: datetime | None = None
    duration_ms: int | None = None
    error_code: str | None = None

    def __post_init__(self) -> None:
        _aware("ended_at", self.ended_at)
        _aware("answered_at", self.answered_at)
        if not self.status.terminal:
            raise ValidationError(f"a call cannot end with status {self.status.value}")


@dataclass(frozen=True)
class RecordingFinalized:
    kind: ClassVar[str] = "recording"
    recording_id: uuid.UUID
    call_id: uuid.UUID
    direction: RecordingDirection
    path: str
    format: RecordingFormat
    sample_rate: int
    channels: int
    duration_ms: int
    size_bytes: int
    sha256: str
    created_at: datetime
    consent_recorded: bool = False
    consent_detail: str | None = None
    retention_until: datetime | None = None
    encrypted: bool = False

    def __post_init__(self) -> None:
        _aware("created_at", self.created_at)
        _aware("retention_until", self.retention_until)
        if self.sample_rate <= 0 or self.channels <= 0 or self.duration_ms < 0 or self.size_bytes < 0:
            raise ValidationError("recording sample rate, channels, duration and size must be positive")
        if len(self.sha256) != 64:
            raise ValidationError("sha256 must be 64 hex digits")


@dataclass(frozen=True)
class CostRecorded:
    """A metered cost; amount in integer micro-dollars, unit price in (fractional) micro-dollars."""

    kind: ClassVar[str] = "cost"
    event_id: uuid.UUID
    service: CostService
    provider: str
    unit: CostUnit
    quantity: Decimal
    unit_price_micros: Decimal
    amount_micros: int
    occurred_at: datetime
    call_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    tier: str | None = None

    def __post_init__(self) -> None:
        _aware("occurred_at", self.occurred_at)
        if self.amount_micros < 0:
            raise ValidationError("cost amount must be >= 0")


@dataclass(frozen=True)
class TierDecided:
    """The voice tier chosen for a call (stage None) or one stage of it, and why (seq orders them)."""

    kind: ClassVar[str] = "tier_decision"
    decision_id: uuid.UUID
    call_id: uuid.UUID
    seq: int
    tier: VoiceTier
    reason: str
    expected_value_micros: int
    marginal_cost_micros: int
    at: datetime
    stage: str | None = None
    lead_score: int | None = None

    def __post_init__(self) -> None:
        _aware("at", self.at)
        if self.seq < 0:
            raise ValidationError("tier decision seq must be >= 0")


Record = (
    CallStarted
    | CallStatusChanged
    | TurnSpoken
    | AgentTransitionRecord
    | ScoreUpdate
    | CallEnded
    | RecordingFinalized
    | CostRecorded
    | TierDecided
    | PlaybookAssigned
    | AgentDecisionRecord
    | CallOutcomeDecided
)

RECORD_TYPES: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        CallStarted,
        CallStatusChanged,
        TurnSpoken,
        AgentTransitionRecord,
        ScoreUpdate,
        CallEnded,
        RecordingFinalized,
        CostRecorded,
        TierDecided,
        PlaybookAssigned,
        AgentDecisionRecord,
        CallOutcomeDecided,
    )
}


def to_wire(record: Record) -> dict[str, Any]:
    """JSON-able form for the spool: {"kind": ..., "data": {...}}."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        data[f.name] = _encode(getattr(record, f.name))
    return {"kind": record.kind, "data": data}


def from_wire(message: dict[str, Any]) -> Record:
    """Inverse of `to_wire`; ValidationError for anything that is not a record we wrote."""
    try:
        cls = RECORD_TYPES[message["kind"]]
        raw = message["data"]
        hints = typing.get_type_hints(cls)
        kwargs = {f.name: _decode(hints[f.name], raw[f.name]) for f in dataclasses.fields(cls) if f.name in raw}
        record: Record = cls(**kwargs)
    except (KeyError, TypeError, ValueError) as err:
        raise ValidationError(f"not a spooled record: {err!r}") from err
    return record


def _encode(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        concrete = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(concrete[0], value)
    if hint is uuid.UUID:
        return uuid.UUID(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is Decimal:
        return Decimal(value)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return hint(value)
    return value
