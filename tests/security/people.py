"""Two people with a full history in the store (contact, lead, calls with turns, score, sealed
recordings, appointment, outbox messages, a dead letter, DNC entry, dial block, costs), so a test
can act on one and prove the other untouched."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text

from reautod.security.keys import KeyRing
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import (
    CallDirection,
    CallStatus,
    CostService,
    CostUnit,
    DncSource,
    RecordingDirection,
)
from reautod.store.recordings import CallRecorder
from reautod.store.records import CallEnded, CallStarted, CostRecorded, ScoreUpdate
from reautod.store.repositories import (
    AppointmentRepository,
    CallRepository,
    CampaignRepository,
    ContactInput,
    ContactRepository,
    DialBlockRepository,
    DncRepository,
    LeadRepository,
    OutboxRepository,
)
from reautod.store.repositories._base import table
from tests.store.factories import call_started, turn

T0 = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
ALICE = "+15550001111"
BOB = "+15550002222"


@dataclass(frozen=True)
class Person:
    phone: str
    contact_id: uuid.UUID
    call_ids: list[uuid.UUID]
    audio: bytes  # what the caller said on the first call (inbound track)


def caller_audio(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(-9000, 9000, 4000, dtype=np.int16).tobytes()


async def record(db: Database, recordings: Path, keys: KeyRing | None, call_id: uuid.UUID,
                 audio: bytes, retention: timedelta | None = None) -> None:
    recorder = CallRecorder(recordings, call_id, sample_rate=8000, keys=keys, retention=retention)
    await recorder.start()
    recorder.write(RecordingDirection.INBOUND, audio)
    recorder.write(RecordingDirection.OUTBOUND, audio[::-1])
    await CallRepository(db).write(await recorder.close())


async def person(db: Database, recordings: Path, keys: KeyRing | None, phone: str, name: str,
                 seed: int, *, at: datetime = T0) -> Person:
    campaigns = CampaignRepository(db)
    campaign = await campaigns.create(f"campaign-{seed}")
    contact = await ContactRepository(db).upsert(ContactInput(phone, name=name,
                                                             email=f"{seed}@example.com"))
    lead = await LeadRepository(db).add(campaign.id, contact.id, next_attempt_at=at)
    calls = CallRepository(db)
    outbound = call_started(campaign, contact, lead, at=at, call_sid=f"CA{seed:032d}")
    # an inbound call from the number with no contact attached (as from an unknown caller)
    inbound = CallStarted(call_id=uuid.uuid4(), created_at=at + timedelta(days=1),
                          direction=CallDirection.INBOUND, from_number=phone)
    await calls.write([
        outbound, turn(outbound.call_id, 0, at=at), turn(outbound.call_id, 1, at=at),
        CallEnded(outbound.call_id, at + timedelta(minutes=3), CallStatus.COMPLETED),
        ScoreUpdate(uuid.uuid4(), 70, at, call_id=outbound.call_id, contact_id=contact.id,
                    lead_id=lead.id, factors={"budget": "yes"}),
        CostRecorded(uuid.uuid4(), CostService.TELEPHONY, "twilio", CostUnit.MINUTES,
                     Decimal(3), Decimal(14_000), 42_000, at, call_id=outbound.call_id,
                     campaign_id=campaign.id),
        inbound, turn(inbound.call_id, 0, at=at + timedelta(days=1)),
    ])
    audio = caller_audio(seed)
    await record(db, recordings, keys, outbound.call_id, audio)
    await AppointmentRepository(db).book(contact.id, at + timedelta(days=3),
                                         at + timedelta(days=3, hours=1), call_id=outbound.call_id,
                                         notes=f"{name} wants a quote")
    outbox = OutboxRepository(db)
    await outbox.enqueue("lead.qualified", "https://crm.example/hook",
                         {"phone": phone, "name": name}, contact_id=contact.id)
    await outbox.enqueue("call.inbound", "https://crm.example/hook", {"from": phone})
    await DncRepository(db).add(phone, DncSource.REQUEST, reason="asked to stop")
    await DialBlockRepository(db).add(lead_id=lead.id, campaign_id=campaign.id, reason="window",
                                      rule_code="federal_hours", detail="too late", source="x",
                                      retry_at=None, at=at)

    async def extra(conn: object) -> None:
        await conn.execute(insert(table(m.CallAttempt)).values(  # type: ignore[attr-defined]
            id=uuid.uuid4(), lead_id=lead.id, campaign_id=campaign.id, attempt_no=1,
            result="dialed", call_id=outbound.call_id, created_at=at))
        await conn.execute(insert(table(m.WebhookDeadLetter)).values(  # type: ignore[attr-defined]
            id=uuid.uuid4(), contact_id=contact.id, event_type="lead.qualified",
            target_url="https://crm.example/hook", payload={"phone": phone}, attempts=5,
            dead_at=at))

    await db.transaction(extra)
    return Person(phone, contact.id, [outbound.call_id, inbound.call_id], audio)


async def database_text(db: Database) -> str:
    """Every row of every table as text, to search for what must not be there."""
    async with db.engine.connect() as conn:
        names = [t.name for t in m.Base.metadata.sorted_tables]
        out = []
        for name in names:
            for row in await conn.execute(text(f"SELECT * FROM {name}")):
                out.append(f"{name}: {tuple(row)}")
    return "\n".join(out)
