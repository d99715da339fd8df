"""The schema: SQLAlchemy 2 typed ORM models (the ORM stays inside reautod.store).

ON DELETE rules are chosen so that erasing a contact removes everything about that person:
leads, calls (and through them turns, transitions, status events, recordings rows, scores),
appointments and outbox messages cascade. What survives is deliberate: cost_events keep the
money (call_id set NULL; no personal data in them), dnc_entries keep the suppression (the law
requires remembering a do-not-call request), audit_log keeps ids only and is append-only.
Recording *files* are not removed by the database: the erasure job deletes them first.
A subject erasure (reautod.security.privacy) also removes the number's dnc_entries and calls
that name it without a contact, and keeps only its salted hash in erased_subjects.
Campaigns are archived, not deleted, once they have calls (RESTRICT from calls and costs).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from reautod.store import enums as e
from reautod.store.types import Base, BigIntPK, JSONDoc, UTCDateTime, one_of, utcnow

CASCADE = "CASCADE"
SET_NULL = "SET NULL"
RESTRICT = "RESTRICT"


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (one_of("status", e.CampaignStatus),)

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=e.CampaignStatus.DRAFT.value)
    agent_config: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    calling_window: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    pacing: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_delay_s: Mapped[int] = mapped_column(Integer, default=3600)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (one_of("consent_status", e.ConsentStatus),)

    id: Mapped[uuid.UUID] = _pk()
    phone_e164: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    timezone: Mapped[str | None] = mapped_column(String(64))
    consent_status: Mapped[str] = mapped_column(String(16), default=e.ConsentStatus.UNKNOWN.value)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_source: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(200))
    dnc: Mapped[bool] = mapped_column(Boolean, default=False)
    custom: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Lead(Base):
    """A contact in a campaign, with its dialing state."""

    __tablename__ = "leads"
    __table_args__ = (
        one_of("status", e.LeadStatus),
        UniqueConstraint("campaign_id", "contact_id"),
        # The dialer's query: due leads of one campaign, oldest first.
        Index(None, "campaign_id", "status", "next_attempt_at"),
        # The reaper's query: claims whose lease ran out.
        Index(None, "lease_expires_at"),
        # Exports page through leads in creation order.
        Index(None, "created_at"),
    )

    id: Mapped[uuid.UUID] = _pk()
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete=CASCADE))
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete=CASCADE), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=e.LeadStatus.NEW.value)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[int | None] = mapped_column(Integer)
    # A dialer's claim on the lead (which daemon, until when); NULL when nobody holds it.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        one_of("direction", e.CallDirection),
        one_of("transport", e.CallTransport),
        one_of("status", e.CallStatus),
        one_of("amd_result", e.AmdResult),
        one_of("outcome", e.CallOutcome),
        CheckConstraint("duration_ms IS NULL OR duration_ms >= 0", name="duration_nonnegative"),
        # Operators' and analytics' query: a campaign's calls by status over time.
        Index(None, "campaign_id", "status", "created_at"),
        Index(None, "created_at"),
        # The A/B report's query: a playbook's calls by version and variant.
        Index(None, "playbook", "prompt_version"),
    )

    id: Mapped[uuid.UUID] = _pk()
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete=RESTRICT)
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete=CASCADE), index=True
    )
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("leads.id", ondelete=CASCADE), index=True
    )
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    stream_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(16), default=e.CallDirection.OUTBOUND.value)
    transport: Mapped[str] = mapped_column(String(16), default=e.CallTransport.TWILIO.value)
    status: Mapped[str] = mapped_column(String(16), default=e.CallStatus.QUEUED.value)
    amd_result: Mapped[str | None] = mapped_column(String(24))
    outcome: Mapped[str | None] = mapped_column(String(20))
    disposition: Mapped[str | None] = mapped_column(Text)
    from_number: Mapped[str | None] = mapped_column(String(16))
    to_number: Mapped[str | None] = mapped_column(String(16))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    # The playbook and A/B variant the conversation ran (reautod.dialogue), for the A/B report.
    playbook: Mapped[str | None] = mapped_column(String(64))
    prompt_variant: Mapped[str | None] = mapped_column(String(48))
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class CallEvent(Base):
    """The status timeline of a call; each status at most once, so replays change nothing."""

    __tablename__ = "call_events"
    __table_args__ = (one_of("status", e.CallStatus), UniqueConstraint("call_id", "status"))

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete=CASCADE))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


class CallAttempt(Base):
    """One decision of the dialer about a lead: dialed (then call_id is set) or skipped, and why."""

    __tablename__ = "call_attempts"
    __table_args__ = (one_of("result", e.AttemptResult), UniqueConstraint("lead_id", "attempt_no"))

    id: Mapped[uuid.UUID] = _pk()
    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete=CASCADE))
    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete=CASCADE), index=True
    )
    attempt_no: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(20), default=e.AttemptResult.PENDING.value)
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete=SET_NULL), index=True
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (
        one_of("speaker", e.Speaker),
        # Also the "turns by call" index, in order.
        UniqueConstraint("call_id", "seq"),
    )

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete=CASCADE))
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    agent: Mapped[str | None] = mapped_column(String(64))
    stt_confidence: Mapped[float | None] = mapped_column(Float)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stt_ms: Mapped[int | None] = mapped_column(Integer)
    llm_first_token_ms: Mapped[int | None] = mapped_column(Integer)
    llm_ms: Mapped[int | None] = mapped_column(Integer)
    tts_first_byte_ms: Mapped[int | None] = mapped_column(Integer)
    response_ms: Mapped[int | None] = mapped_column(Integer)


class AgentTransition(Base):
    __tablename__ = "agent_transitions"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete=CASCADE))
    seq: Mapped[int] = mapped_column(Integer)
    from_agent: Mapped[str | None] = mapped_column(String(64))
    to_agent: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgentDecision(Base):
    """A tool the agent used or was refused, with its evidence (the turn and what was read)."""

    __tablename__ = "agent_decisions"
    __table_args__ = (one_of("status", e.DecisionStatus), UniqueConstraint("call_id", "seq"))

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete=CASCADE))
    seq: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    args: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class LeadScore(Base):
    __tablename__ = "lead_scores"
    __table_args__ = (
        CheckConstraint("score >= 0 AND score <= 100", name="score_range"),
        Index(None, "contact_id", "at"),
    )

    id: Mapped[uuid.UUID] = _pk()
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete=CASCADE))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("leads.id", ondelete=CASCADE), index=True
    )
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete=CASCADE), index=True
    )
    score: Mapped[int] = mapped_column(Integer)
    factors: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        one_of("direction", e.RecordingDirection),
        one_of("format", e.RecordingFormat),
        one_of("status", e.RecordingStatus),
        UniqueConstraint("call_id", "direction"),
        Index(None, "retention_until"),
    )

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete=CASCADE))
    direction: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text, unique=True)
    format: Mapped[str] = mapped_column(String(8))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_detail: Mapped[str | None] = mapped_column(Text)
    retention_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=e.RecordingStatus.FINAL.value)
    created_at: Mapped[datetime] = _created()


class CostEvent(Base):
    __tablename__ = "cost_events"
    __table_args__ = (
        one_of("service", e.CostService),
        one_of("unit", e.CostUnit),
        CheckConstraint("amount_micros >= 0", name="amount_nonnegative"),
        # The per-day cost query of one campaign, and of all campaigns.
        Index(None, "campaign_id", "occurred_at"),
        Index(None, "occurred_at"),
    )

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete=SET_NULL), index=True
    )
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete=RESTRICT)
    )
    service: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str | None] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    unit_price_micros: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Budget(Base):
    __tablename__ = "budgets"
    __table_args__ = (
        one_of("period", e.BudgetPeriod),
        CheckConstraint("limit_micros >= 0", name="limit_nonnegative"),
        UniqueConstraint("campaign_id", "period"),
    )

    id: Mapped[uuid.UUID] = _pk()
    # NULL campaign_id: the site-wide budget.
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("campaigns.id", ondelete=CASCADE))
    period: Mapped[str] = mapped_column(String(8))
    limit_micros: Mapped[int] = mapped_column(BigInteger)
    # Days, weeks and months start at midnight in this IANA zone (the campaign's).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class BudgetAlert(Base):
    """An alert that fired: at most one per (scope, period window, kind, threshold)."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        one_of("period", e.BudgetPeriod),
        one_of("kind", e.BudgetAlertKind),
        UniqueConstraint("scope", "period", "period_start", "kind", "threshold_pct"),
    )

    id: Mapped[uuid.UUID] = _pk()
    scope: Mapped[str] = mapped_column(String(36))  # "global" or a campaign id
    period: Mapped[str] = mapped_column(String(8))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    threshold_pct: Mapped[int] = mapped_column(Integer)
    spent_micros: Mapped[int] = mapped_column(BigInteger)
    limit_micros: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SpendingStop(Base):
    """The emergency stop: one row (id 1); while `stopped`, nothing is dialed or spent on premium."""

    __tablename__ = "spending_stop"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stopped: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CostReconciliation(Base):
    """Twilio's reported price of a call against what our ledger metered for its telephony."""

    __tablename__ = "cost_reconciliations"
    __table_args__ = (Index(None, "reported_at"),)

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete=SET_NULL), index=True
    )
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete=RESTRICT)
    )
    metered_micros: Mapped[int] = mapped_column(BigInteger)
    reported_micros: Mapped[int] = mapped_column(BigInteger)
    # reported - metered: positive when we under-metered
    difference_micros: Mapped[int] = mapped_column(BigInteger)
    price_unit: Mapped[str] = mapped_column(String(8))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TierDecision(Base):
    """Why a call (or one stage of it) got the local or the premium voice."""

    __tablename__ = "tier_decisions"
    __table_args__ = (one_of("tier", e.VoiceTier), UniqueConstraint("call_id", "seq"))

    id: Mapped[uuid.UUID] = _pk()
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete=CASCADE))
    seq: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    lead_score: Mapped[int | None] = mapped_column(Integer)
    expected_value_micros: Mapped[int] = mapped_column(BigInteger)
    marginal_cost_micros: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        one_of("status", e.AppointmentStatus),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index(None, "starts_at"),
    )

    id: Mapped[uuid.UUID] = _pk()
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete=CASCADE), index=True
    )
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete=SET_NULL), index=True
    )
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete=SET_NULL), index=True
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=e.AppointmentStatus.BOOKED.value)
    calendar_ref: Mapped[str | None] = mapped_column(String(256))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class WebhookOutbox(Base):
    """One delivery of one event to one endpoint (webhook receiver, SMS, email)."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        one_of("status", e.OutboxStatus),
        one_of("channel", e.OutboxChannel),
        Index(None, "status", "next_attempt_at"),
        # The ordering rule's lookup: earlier undelivered messages of one lead to one endpoint.
        Index(None, "ordering_key", "endpoint", "created_at"),
    )

    id: Mapped[uuid.UUID] = _pk()
    # Payloads carry personal data: erasing the contact removes its pending messages.
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete=CASCADE), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    # The event's id, shared by its deliveries to every endpoint: the receiver's idempotency key.
    event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    channel: Mapped[str] = mapped_column(
        String(16), default=e.OutboxChannel.WEBHOOK.value,
        server_default=e.OutboxChannel.WEBHOOK.value)
    # The configured endpoint (or confirmation sender) it goes to, by name.
    endpoint: Mapped[str] = mapped_column(String(64), default="global", server_default="global")
    # Messages with one key go to one endpoint in creation order (the lead's id).
    ordering_key: Mapped[str | None] = mapped_column(String(64))
    target_url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    status: Mapped[str] = mapped_column(String(16), default=e.OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = _created()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDeadLetter(Base):
    __tablename__ = "webhook_dead_letters"

    id: Mapped[uuid.UUID] = _pk()
    outbox_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_outbox.id", ondelete=SET_NULL), index=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete=CASCADE), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    target_url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    dead_at: Mapped[datetime] = _created()


class DncEntry(Base):
    """Suppression list, independent of contacts so it survives their erasure.

    NULL campaign_id: the global (company) list. One entry per phone globally and one per
    (phone, campaign): partial unique indexes, since NULLs never collide in a plain UNIQUE.
    """

    __tablename__ = "dnc_entries"
    __table_args__ = (
        one_of("source", e.DncSource),
        Index("uq_dnc_entries_global_phone", "phone_e164", unique=True,
              postgresql_where=text("campaign_id IS NULL"),
              sqlite_where=text("campaign_id IS NULL")),
        Index("uq_dnc_entries_campaign_phone", "phone_e164", "campaign_id", unique=True,
              postgresql_where=text("campaign_id IS NOT NULL"),
              sqlite_where=text("campaign_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = _pk()
    phone_e164: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete=CASCADE)
    )
    source: Mapped[str] = mapped_column(String(16))
    # how the request came in: spoken, keypress, agent_tool, operator, import
    channel: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DialBlock(Base):
    """A claimed lead the dialer did not dial, and the rule that blocked it."""

    __tablename__ = "dial_blocks"
    __table_args__ = (Index(None, "campaign_id", "at"),)

    id: Mapped[uuid.UUID] = _pk()
    lead_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("leads.id", ondelete=CASCADE), index=True
    )
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete=CASCADE))
    reason: Mapped[str] = mapped_column(String(16))
    rule_code: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Append-only and hash-chained (see repositories/audit.py); holds ids, never personal data.

    Triggers refuse UPDATE, and DELETE of any row an `audit_anchors` row does not cover (the
    retention job's pruning). UNIQUE(prev_hash): two entries can never claim the same
    predecessor, so the chain cannot fork even if appends raced."""

    __tablename__ = "audit_log"
    # AUTOINCREMENT on SQLite: ids are never reused after pruning (an anchor covers them)
    __table_args__ = (Index(None, "at"), Index(None, "target_type", "target_id"),
                      UniqueConstraint("prev_hash"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = _created()
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    origin: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(64), default="ok")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditAnchor(Base):
    """Where the audit chain starts after pruning: the last pruned entry's id and hash.
    Append-only like the log."""

    __tablename__ = "audit_anchors"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    through_id: Mapped[int] = mapped_column(BigInteger)
    through_hash: Mapped[str] = mapped_column(String(64))
    pruned: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = _created()


class PrivacyRequest(Base):
    """A subject request (export or erasure) with its legal due dates; the subject only as the
    salted hash of the phone number, so the log outlives an erasure without naming anyone."""

    __tablename__ = "privacy_requests"
    __table_args__ = (
        one_of("kind", e.PrivacyRequestKind),
        one_of("regime", e.PrivacyRegime),
        one_of("status", e.PrivacyRequestStatus),
        Index(None, "subject_hash"),
        Index(None, "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = _pk()
    kind: Mapped[str] = mapped_column(String(16))
    regime: Mapped[str] = mapped_column(String(16))
    subject_hash: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledge_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=e.PrivacyRequestStatus.OPEN.value)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    receipt: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


class ErasedSubject(Base):
    """A number that was erased: only its salted hash (and which salt), so it is never imported
    or dialed again."""

    __tablename__ = "erased_subjects"

    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    salt_id: Mapped[str] = mapped_column(String(16))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class ApiCredential(Base):
    """A credential for the admin API: a JWT made by `token.create` (its `jti`, so it can be
    revoked one by one), an API key or a refresh token (only the SHA-256 of its secret). Never
    the secret. A refresh token and the tokens made from it share a `family` (the first refresh
    token's id); a refresh token is `spent_at` once exchanged."""

    __tablename__ = "api_credentials"
    __table_args__ = (one_of("kind", e.CredentialKind), Index(None, "kind", "created_at"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the jti, or the key's id
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    family: Mapped[str | None] = mapped_column(String(32), index=True)
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
