"""Outbox (claim, retry, dead letters), appointments, budgets and recording retention."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from reautod.errors import NotFoundError, ValidationError
from reautod.store.database import Database
from reautod.store.enums import AppointmentStatus, BudgetPeriod, RecordingDirection, RecordingFormat
from reautod.store.records import RecordingFinalized
from reautod.store.repositories import (
    AppointmentRepository,
    BudgetRepository,
    CallRepository,
    OutboxRepository,
    RecordingRepository,
)
from tests.store.factories import T0, call_started, campaign_contact_lead


async def test_outbox_claims_retries_and_dead_letters(db: Database) -> None:
    _, contact, _ = await campaign_contact_lead(db)
    outbox = OutboxRepository(db)
    first = await outbox.enqueue(
        "lead.qualified", "https://crm.example/hook", {"score": 80}, contact_id=contact.id
    )
    second = await outbox.enqueue("lead.booked", "https://crm.example/hook", {"slot": "x"})
    with pytest.raises(ValidationError):
        await outbox.enqueue("x", "ftp://nope", {})

    now = T0 + timedelta(days=400)  # later than the enqueue time, whatever today is
    # Two workers at once never take the same message.
    claims = await asyncio.gather(outbox.claim_due(now, 1), outbox.claim_due(now, 1))
    taken = [m.id for claim in claims for m in claim]
    assert sorted(taken) == sorted([first, second])
    assert await outbox.claim_due(now, 10) == []

    await outbox.delivered(first, now)
    assert not await outbox.failed(second, "HTTP 503", retry_at=now + timedelta(minutes=1))
    assert await outbox.claim_due(now, 10) == []
    [again] = await outbox.claim_due(now + timedelta(minutes=2), 10)
    assert again.id == second and again.attempts == 2 and again.last_error == "HTTP 503"
    assert await outbox.failed(second, "HTTP 410", retry_at=None)
    [dead] = await outbox.dead()
    assert (dead.outbox_id, dead.attempts, dead.last_error) == (second, 2, "HTTP 410")
    assert await outbox.purge_delivered(now + timedelta(seconds=1)) == 1
    # A worker that died mid-delivery: its claim is released after the lease time.
    third = await outbox.enqueue("lead.called", "https://crm.example/hook", {})
    assert [m.id for m in await outbox.claim_due(now, 10)] == [third]
    assert await outbox.reset_stuck(timedelta(minutes=5), now + timedelta(minutes=1)) == 0
    assert await outbox.reset_stuck(timedelta(minutes=5), now + timedelta(minutes=6)) == 1
    assert [m.id for m in await outbox.claim_due(now + timedelta(minutes=6), 10)] == [third]
    with pytest.raises(NotFoundError):
        await outbox.delivered(first, now)


async def test_appointments_are_booked_once(db: Database) -> None:
    campaign, contact, _ = await campaign_contact_lead(db)
    repo = AppointmentRepository(db)
    appointment_id = uuid.uuid4()
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=2, minutes=30)
    booked = await repo.book(
        contact.id,
        start,
        end,
        appointment_id=appointment_id,
        campaign_id=campaign.id,
        timezone="America/Denver",
    )
    again = await repo.book(contact.id, start, end, appointment_id=appointment_id)
    assert again == booked
    await repo.set_status(appointment_id, AppointmentStatus.CONFIRMED)
    [row] = await repo.between(T0, T0 + timedelta(days=3))
    assert row.status == "confirmed" and row.starts_at == start
    with pytest.raises(ValidationError):
        await repo.book(contact.id, end, start)


async def test_budgets_replace_per_scope(db: Database) -> None:
    campaign, _, _ = await campaign_contact_lead(db)
    repo = BudgetRepository(db)
    await repo.set(BudgetPeriod.DAY, 10_000_000)
    await repo.set(BudgetPeriod.DAY, 20_000_000)  # site-wide: replaced, not duplicated
    await repo.set(BudgetPeriod.DAY, 5_000_000, campaign.id)
    rows = {(b.campaign_id, b.period): b.limit_micros for b in await repo.all()}
    assert rows == {(None, "day"): 20_000_000, (campaign.id, "day"): 5_000_000}
    with pytest.raises(ValidationError):
        await repo.set(BudgetPeriod.MONTH, -1)


async def test_expired_recordings(db: Database) -> None:
    start = call_started()
    record = RecordingFinalized(
        uuid.uuid4(),
        start.call_id,
        RecordingDirection.INBOUND,
        "/r/x.wav",
        RecordingFormat.WAV,
        8000,
        1,
        1000,
        16_044,
        "f" * 64,
        T0,
        retention_until=T0 + timedelta(days=30),
    )
    await CallRepository(db).write([start, record])
    repo = RecordingRepository(db)
    assert await repo.expired(T0 + timedelta(days=29)) == []
    [expired] = await repo.expired(T0 + timedelta(days=31))
    assert expired.path == "/r/x.wav"
    await repo.mark_deleted(expired.id)
    assert await repo.expired(T0 + timedelta(days=31)) == []
    assert (await repo.for_call(start.call_id))[0].status == "deleted"
