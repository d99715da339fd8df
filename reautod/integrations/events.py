"""The webhook event schema, version 1: what receivers get, as pydantic models.

Every body is one JSON object, an envelope with `schema_version`, `id` (the event's id: the same
for every delivery and retry of the event, the receiver's idempotency key), `type`,
`occurred_at` (UTC, ISO 8601), `campaign` and `lead` (who it is about; null for site-wide
events), and `data`, whose shape depends on `type`. Money is a decimal string in US dollars.

Compatible changes (a new optional field, a new event type) keep the version; removing or
changing a field's meaning is a new `schema_version`. The JSON Schema of this module is
docs/webhook-schema.json (a test keeps it current).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from reautod.cost import results
from reautod.integrations.event_types import EventType

SCHEMA_VERSION: Literal[1] = 1
__all__ = ["EVENTS", "SCHEMA_VERSION", "EventType", "WebhookEvent", "body_of", "json_schema"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


class CampaignRef(_Model):
    id: str
    name: str


class LeadRef(_Model):
    """The person an event is about (personal data: receivers must protect it)."""

    contact_id: str
    lead_id: str | None = None
    phone: str = Field(description="E.164")
    name: str | None = None
    email: str | None = None
    timezone: str | None = Field(None, description="IANA time zone of the lead")


class CallCompleted(_Model):
    call_id: str
    call_sid: str | None = None
    direction: Literal["outbound", "inbound"] = "outbound"
    status: str = Field(description="final call status: completed, busy, no_answer, failed, ...")
    outcome: str | None = Field(None, description="qualified, not_qualified, booked, callback, ...")
    disposition: str | None = None
    amd_result: str | None = None
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = Field(None, ge=0)
    score: int | None = Field(None, ge=0, le=100)

    _times = field_validator("started_at", "answered_at", "ended_at")(_utc)


class LeadQualified(_Model):
    call_id: str | None = None
    score: int | None = Field(None, ge=0, le=100)
    reason: str | None = None


class LeadScored(_Model):
    call_id: str | None = None
    score: int = Field(ge=0, le=100)
    factors: dict[str, float] = Field(default_factory=dict)
    reason: str | None = None


class AppointmentData(_Model):
    appointment_id: str
    calendar_ref: str | None = Field(None, description="the calendar's id of the booking")
    starts_at: datetime
    ends_at: datetime
    timezone: str = Field(description="the lead's IANA time zone, for showing the time")
    status: Literal["pending", "confirmed", "cancelled"]
    meeting_link: str | None = None
    call_id: str | None = None
    previous_starts_at: datetime | None = Field(None, description="appointment.rescheduled only")

    _times = field_validator("starts_at", "ends_at", "previous_starts_at")(_utc)


class LeadOptedOut(_Model):
    call_id: str | None = None
    scope: Literal["global", "campaign"]
    channel: str | None = Field(None, description="spoken, keypress, agent_tool, operator, import")
    reason: str | None = None


class BudgetAlert(_Model):
    """A budget crossed a threshold, or its forecast the cap (reautod.cost's `budget.alert`)."""

    kind: Literal["threshold", "forecast"]
    scope: Literal["site", "campaign"]
    period: Literal["day", "week", "month", "total"]
    period_start: datetime
    threshold_pct: int = Field(ge=0, le=1000)
    limit_usd: Decimal
    spent_usd: Decimal
    projected_usd: Decimal | None = Field(None, description="spend at the period's end, forecast")

    _times = field_validator("period_start")(_utc)


class _Envelope(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="idempotency key")
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    campaign: CampaignRef | None = None
    lead: LeadRef | None = None

    _when = field_validator("occurred_at")(_utc)


class CallCompletedEvent(_Envelope):
    type: Literal["call.completed"] = "call.completed"
    data: CallCompleted


class LeadQualifiedEvent(_Envelope):
    type: Literal["lead.qualified"] = "lead.qualified"
    data: LeadQualified


class LeadScoredEvent(_Envelope):
    type: Literal["lead.scored"] = "lead.scored"
    data: LeadScored


class AppointmentBookedEvent(_Envelope):
    type: Literal["appointment.booked"] = "appointment.booked"
    data: AppointmentData


class AppointmentRescheduledEvent(_Envelope):
    type: Literal["appointment.rescheduled"] = "appointment.rescheduled"
    data: AppointmentData


class AppointmentCancelledEvent(_Envelope):
    type: Literal["appointment.cancelled"] = "appointment.cancelled"
    data: AppointmentData


class LeadOptedOutEvent(_Envelope):
    type: Literal["lead.opted_out"] = "lead.opted_out"
    data: LeadOptedOut


class BudgetAlertEvent(_Envelope):
    type: Literal["budget.alert"] = "budget.alert"
    data: BudgetAlert


WebhookEvent = Annotated[
    CallCompletedEvent | LeadQualifiedEvent | LeadScoredEvent | AppointmentBookedEvent
    | AppointmentRescheduledEvent | AppointmentCancelledEvent | LeadOptedOutEvent
    | BudgetAlertEvent,
    Field(discriminator="type"),
]
EVENTS: TypeAdapter[WebhookEvent] = TypeAdapter(WebhookEvent)


def body_of(event: WebhookEvent) -> bytes:
    """The exact bytes sent (and signed): compact JSON of the envelope."""
    return EVENTS.dump_json(event)


def json_schema() -> dict[str, object]:
    return EVENTS.json_schema(mode="serialization")


def _usd(micros: int) -> Decimal:
    return Decimal(micros) / Decimal(1_000_000)


def budget_alert_event(alert: results.BudgetAlert, campaign: CampaignRef | None) -> BudgetAlertEvent:
    """The webhook event of a cost part's budget alert (`campaign`: the budget's, if any)."""
    return BudgetAlertEvent(
        occurred_at=alert.at, campaign=campaign,
        data=BudgetAlert(kind=alert.kind.value, scope="campaign" if alert.campaign_id else "site",
                         period=alert.period.value, period_start=alert.period_start,
                         threshold_pct=alert.threshold_pct, limit_usd=_usd(alert.limit_micros),
                         spent_usd=_usd(alert.spent_micros),
                         projected_usd=None if alert.projected_micros is None
                         else _usd(alert.projected_micros)))
