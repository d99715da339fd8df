"""The claim step shared by the dialer's lead queue and the outbox: on Postgres a claimer skips
the rows another transaction holds (FOR UPDATE SKIP LOCKED) instead of waiting for them or taking
them. The dialer's own two-dialer tests are in tests/campaigns/test_dialer.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.store.database import Database
from reautod.store.repositories import (
    CampaignRepository,
    ContactInput,
    ContactRepository,
    LeadRepository,
    OutboxRepository,
)
from reautod.store.repositories._claim import claim_rows
from reautod.store.repositories.leads import leads as lead_table
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


async def test_claim_rows_skips_rows_another_claimer_holds(
    two_pools: tuple[Database, Database],
) -> None:
    """claim_rows itself, as the dialer's lead queue calls it: locked rows are skipped, the
    rest are written and come back in the order `due` picked them."""
    first, second = two_pools
    campaign = await CampaignRepository(first).create("spring")
    leads = []
    for i in range(6):
        contact = await ContactRepository(first).upsert(ContactInput(f"+1555000{i:04d}"))
        leads.append((await LeadRepository(first).add(
            campaign.id, contact.id, next_attempt_at=T0 + timedelta(minutes=i))).id)
    # Latest due first: what comes back must follow this order, not the order rows were written.
    due = select(lead_table.c.id).order_by(lead_table.c.next_attempt_at.desc())
    taken = {"status": "dialing", "attempts": lead_table.c.attempts + 1}

    async def claim(conn: AsyncConnection) -> list[Row[Any]]:
        return await claim_rows(conn, lead_table, due, taken)

    async with first.engine.begin() as conn:
        locked = {r.id for r in await conn.execute(
            text("SELECT id FROM leads ORDER BY id LIMIT 3 FOR UPDATE"))}
        claimed = await asyncio.wait_for(second.transaction(claim), timeout=30)
    assert [row.id for row in claimed] == [i for i in reversed(leads) if i not in locked]
    assert all(row.status == "dialing" and row.attempts == 1 for row in claimed)
    untouched = await LeadRepository(first).get(next(iter(locked)))
    assert untouched.status == "new" and untouched.attempts == 0


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
