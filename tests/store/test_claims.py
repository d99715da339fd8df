"""The claim step shared by the lead and outbox queues: on Postgres a claimer skips the rows
another transaction holds (FOR UPDATE SKIP LOCKED) instead of waiting for them or taking them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from reautod.store.database import Database
from reautod.store.repositories import (
    CampaignRepository,
    ContactInput,
    ContactRepository,
    LeadRepository,
    OutboxRepository,
)
from tests.store.conftest import TEST_DB_SETTINGS
from tests.store.factories import T0

LATER = T0 + timedelta(days=400)  # after every row's due time, whatever today is


@pytest.fixture
async def two_pools(fresh_database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two Database pools on one Postgres database, as two daemons would have."""
    first, second = Database(fresh_database_url, TEST_DB_SETTINGS), Database(
        fresh_database_url, TEST_DB_SETTINGS)
    await first.open()
    await first.upgrade("head")
    await second.open()
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def test_lead_claims_skip_rows_another_claimer_holds(
    two_pools: tuple[Database, Database],
) -> None:
    first, second = two_pools
    campaign = await CampaignRepository(first).create("spring")
    leads = []
    for i in range(6):
        contact = await ContactRepository(first).upsert(ContactInput(f"+1555000{i:04d}"))
        leads.append((await LeadRepository(first).add(campaign.id, contact.id,
                                                      next_attempt_at=T0)).id)
    async with first.engine.begin() as conn:
        locked = {r.id for r in await conn.execute(
            text("SELECT id FROM leads ORDER BY id LIMIT 3 FOR UPDATE"))}
        claimed = await asyncio.wait_for(
            LeadRepository(second).claim_due(campaign.id, LATER, 100), timeout=30)
    assert {row.id for row in claimed} == set(leads) - locked
    assert all(row.status == "dialing" and row.attempts == 1 for row in claimed)


async def test_outbox_claims_skip_rows_another_claimer_holds(
    two_pools: tuple[Database, Database],
) -> None:
    first, second = two_pools
    messages: list[uuid.UUID] = [
        await OutboxRepository(first).enqueue("lead.called", "https://crm.example/hook", {"n": i})
        for i in range(6)
    ]
    async with first.engine.begin() as conn:
        locked = {r.id for r in await conn.execute(
            text("SELECT id FROM webhook_outbox ORDER BY id LIMIT 3 FOR UPDATE"))}
        claimed = await asyncio.wait_for(OutboxRepository(second).claim_due(LATER, 100), timeout=30)
    assert {m.id for m in claimed} == set(messages) - locked
    assert all(m.status == "delivering" and m.attempts == 1 for m in claimed)
