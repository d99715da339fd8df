"""Small builders of valid rows and records for store tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from reautod.store.database import Database
from reautod.store.enums import CallStatus, Speaker
from reautod.store.records import CallStarted, TurnSpoken
from reautod.store.repositories import (
    CampaignRepository,
    CampaignRow,
    ContactInput,
    ContactRepository,
    ContactRow,
    LeadRepository,
    LeadRow,
)

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


async def campaign_contact_lead(
    db: Database, name: str = "spring", phone: str = "+15550001111"
) -> tuple[CampaignRow, ContactRow, LeadRow]:
    campaign = await CampaignRepository(db).create(name)
    contact = await ContactRepository(db).upsert(ContactInput(phone, name="Pat Doe"))
    lead = await LeadRepository(db).add(campaign.id, contact.id, next_attempt_at=T0)
    return campaign, contact, lead


def call_started(
    campaign: CampaignRow | None = None,
    contact: ContactRow | None = None,
    lead: LeadRow | None = None,
    *,
    call_id: uuid.UUID | None = None,
    call_sid: str | None = None,
    at: datetime = T0,
    status: CallStatus = CallStatus.INITIATED,
) -> CallStarted:
    return CallStarted(
        call_id=call_id or uuid.uuid4(),
        created_at=at,
        status=status,
        campaign_id=campaign.id if campaign else None,
        contact_id=contact.id if contact else None,
        lead_id=lead.id if lead else None,
        call_sid=call_sid,
    )


def turn(call_id: uuid.UUID, seq: int, *, at: datetime = T0) -> TurnSpoken:
    return TurnSpoken(
        turn_id=uuid.uuid4(),
        call_id=call_id,
        seq=seq,
        speaker=Speaker.AGENT if seq % 2 == 0 else Speaker.CALLER,
        text=f"utterance {seq}",
        started_at=at + timedelta(seconds=seq),
        ended_at=at + timedelta(seconds=seq, milliseconds=800),
        stt_confidence=0.9 if seq % 2 else None,
        response_ms=400 + seq,
    )
