"""On Postgres with 100k rows, the dialer's due-leads query and the per-day cost query use the
indexes made for them (checked with EXPLAIN after ANALYZE)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.store.database import Database
from reautod.store.repositories.costs import daily_cost_query
from reautod.store.repositories.leads import due_leads_query
from tests.store.conftest import TEST_DB_SETTINGS

ROWS = 100_000
SEED = [
    """INSERT INTO campaigns (id, name, status, agent_config, calling_window, pacing,
                              max_attempts, retry_delay_s, created_at, updated_at)
       SELECT gen_random_uuid(), 'campaign ' || i, 'active', '{}', '{}', '{}', 3, 3600, now(), now()
       FROM generate_series(1, 20) AS i""",
    f"""INSERT INTO contacts (id, phone_e164, consent_status, dnc, custom, created_at, updated_at)
        SELECT gen_random_uuid(), '+1555' || lpad(i::text, 7, '0'), 'unknown', false, '{{}}',
               now(), now()
        FROM generate_series(1, {ROWS}) AS i""",
    """WITH c AS (SELECT id, row_number() OVER (ORDER BY name) AS n FROM campaigns),
            k AS (SELECT id, row_number() OVER (ORDER BY phone_e164) AS n FROM contacts)
       INSERT INTO leads (id, campaign_id, contact_id, status, priority, attempts,
                          next_attempt_at, created_at, updated_at)
       SELECT gen_random_uuid(), c.id, k.id,
              (ARRAY['new', 'retry', 'dialing', 'booked', 'exhausted'])[1 + k.n % 5], 0, 0,
              timestamptz '2026-11-20 00:00+00' + (k.n % 4320) * interval '1 minute', now(), now()
       FROM k JOIN c ON c.n = 1 + k.n % 20""",
    f"""WITH c AS (SELECT id, row_number() OVER (ORDER BY name) AS n FROM campaigns)
        INSERT INTO cost_events (id, campaign_id, service, provider, unit, quantity,
                                 unit_price_micros, amount_micros, occurred_at)
        SELECT gen_random_uuid(), c.id, 'llm', 'llama.cpp', 'tokens', 100, 1, 100,
               timestamptz '2026-08-23 00:00+00' + (i % 129600) * interval '1 minute'
        FROM generate_series(1, {ROWS}) AS i JOIN c ON c.n = 1 + i % 20""",
    "ANALYZE",
]


@pytest.fixture
async def big_db(fresh_database_url: str) -> AsyncIterator[Database]:
    db = Database(fresh_database_url, TEST_DB_SETTINGS)
    await db.open()
    await db.upgrade("head")
    async with db.engine.begin() as conn:
        for statement in SEED[:-1]:
            await conn.execute(text(statement))
    async with db.engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text(SEED[-1]))
    try:
        yield db
    finally:
        await db.close()


async def explain(conn: AsyncConnection, query: Select[Any]) -> str:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
    plan = result.scalar_one()
    return json.dumps(plan if not isinstance(plan, str) else json.loads(plan))


async def campaign_id(conn: AsyncConnection) -> uuid.UUID:
    result = await conn.execute(text("SELECT id FROM campaigns WHERE name = 'campaign 7'"))
    return uuid.UUID(str(result.scalar_one()))


async def test_due_leads_and_daily_cost_use_their_indexes(big_db: Database) -> None:
    async with big_db.engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM leads"))).scalar_one()
        assert count == ROWS
        cid = await campaign_id(conn)
        now = datetime(2026, 11, 21, 12, tzinfo=UTC)

        due_plan = await explain(conn, due_leads_query(cid, now, 100))
        assert "ix_leads_campaign_id_status_next_attempt_at" in due_plan, due_plan
        assert "Seq Scan" not in due_plan, due_plan

        cost_plan = await explain(conn, daily_cost_query(now - timedelta(days=7), cid))
        assert "ix_cost_events_campaign_id_occurred_at" in cost_plan, cost_plan
        assert "Seq Scan" not in cost_plan, cost_plan
