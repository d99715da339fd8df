"""Migrations: up, down and up again with data on both backends; no drift; start-up rules."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from reautod.errors import StoreError, UnavailableError, ValidationError
from reautod.store import schema
from reautod.store.database import Database
from reautod.store.repositories import AuditRepository, CallRepository
from reautod.store.schema import head_revision
from tests.store.conftest import TEST_DB_SETTINGS
from tests.store.factories import call_started, campaign_contact_lead, turn

TABLES = {
    "audit_log",
    "campaigns",
    "contacts",
    "leads",
    "calls",
    "call_events",
    "call_attempts",
    "turns",
    "agent_transitions",
    "lead_scores",
    "recordings",
    "cost_events",
    "budgets",
    "appointments",
    "webhook_outbox",
    "webhook_dead_letters",
    "dnc_entries",
}


async def _tables(db: Database) -> set[str]:
    def names(conn: object) -> set[str]:
        from sqlalchemy import inspect

        return set(inspect(conn).get_table_names())

    async with db.engine.connect() as conn:
        return await conn.run_sync(names)


async def _counts(db: Database) -> dict[str, int]:
    async with db.engine.connect() as conn:
        return {
            t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())
            for t in ("leads", "calls", "turns", "audit_log")
        }


async def test_walk_every_revision_up_down_up_with_data(empty_db: Database) -> None:
    db = empty_db
    status = await db.schema_status()
    assert status.current is None and status.head == head_revision()
    revisions = [r.revision for r in reversed(await db.history())]  # oldest first
    for rev in revisions:  # up, one step at a time
        assert (await db.upgrade(rev)).current == rev
    assert await _tables(db) >= TABLES

    campaign, contact, lead = await campaign_contact_lead(db)
    start = call_started(campaign, contact, lead, call_sid="CA" + "1" * 32)
    await CallRepository(db).write([start, turn(start.call_id, 0), turn(start.call_id, 1)])
    await AuditRepository(db).append(
        "test", "seeded", target_type="call", target_id=str(start.call_id)
    )
    assert await _counts(db) == {"leads": 1, "calls": 1, "turns": 2, "audit_log": 1}

    for rev in [*reversed(revisions[:-1]), "base"]:  # down, one step at a time, tables holding data
        await db.downgrade(rev)
        if rev != "base":
            # Rows survive each step (on SQLite batch mode rebuilds tables: no cascade may fire).
            assert await _counts(db) == {"leads": 1, "calls": 1, "turns": 2, "audit_log": 1}, rev
    assert (await db.schema_status()).current is None
    assert not (TABLES & await _tables(db))

    await db.upgrade("head")
    assert (await db.schema_status()).up_to_date
    assert await _tables(db) >= TABLES
    # Usable again after the round trip.
    campaign, contact, lead = await campaign_contact_lead(db)
    assert (await CallRepository(db).recent()) == []


async def test_models_and_migrations_do_not_drift(db: Database) -> None:
    await db.check_drift()  # raises StoreError(code='schema_drift') on drift


async def test_drift_is_detected(db: Database) -> None:
    """The drift check is real: a column the models do not know makes it fail."""
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE contacts ADD COLUMN shoe_size INTEGER"))
    with pytest.raises(StoreError, match="shoe_size") as info:
        await db.check_drift()
    assert info.value.code == "schema_drift"


async def test_audit_log_is_append_only(db: Database) -> None:
    audit = AuditRepository(db)
    entry = await audit.append(
        "operator:1000", "campaign.start", target_type="campaign", target_id="x"
    )
    for statement in (
        f"UPDATE audit_log SET action = 'tampered' WHERE id = {entry}",
        f"DELETE FROM audit_log WHERE id = {entry}",
    ):
        with pytest.raises(StoreError):
            await db.transaction(lambda conn, s=statement: conn.execute(text(s)))  # type: ignore[misc]
    rows = await audit.recent()
    assert [(r.id, r.action) for r in rows] == [(entry, "campaign.start")]


async def test_postgres_behind_refuses_to_start_unless_auto_migrate(
    fresh_database_url: str,
) -> None:
    db = Database(fresh_database_url, TEST_DB_SETTINGS)
    await db.open()
    try:
        with pytest.raises(UnavailableError, match="reautoctl db upgrade"):
            await db.ensure_schema(auto_migrate=False)
        assert (await db.schema_status()).current is None
        status = await db.ensure_schema(auto_migrate=True)
        assert status.up_to_date
    finally:
        await db.close()


async def test_embedded_sqlite_migrates_itself(tmp_path: object) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/new/reautod.db", TEST_DB_SETTINGS)
    await db.open()
    try:
        assert (await db.ensure_schema(auto_migrate=False)).up_to_date
    finally:
        await db.close()


async def test_unknown_revision_in_database_is_refused(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    with pytest.raises(UnavailableError, match="does not know"):
        await db.ensure_schema(auto_migrate=True)


async def test_unknown_target_revision_is_a_clear_error(db: Database) -> None:
    with pytest.raises(ValidationError, match="migration refused"):
        await db.upgrade("nope_" + uuid.uuid4().hex[:6])


@pytest.mark.parametrize(
    "url",
    ["mysql://x/y", "postgresql+asyncpg://x/y", "sqlite+aiosqlite://", "not a url"],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        Database(url, TEST_DB_SETTINGS)


async def test_unreachable_database_names_itself() -> None:
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/nothing", TEST_DB_SETTINGS)
    with pytest.raises(UnavailableError, match=r"127\.0\.0\.1:1"):
        await db.open()


def test_a_checkout_uses_its_top_level_migrations() -> None:
    root = Path(__file__).resolve().parents[2]
    assert not schema.INSTALLED_MIGRATIONS_DIR.exists()  # only a built wheel has the packaged copy
    assert schema.migrations_dir() == root / "migrations"


def test_the_packaged_copy_wins_and_a_missing_one_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """site-packages: the wheel's reautod/migrations, never a stray top-level `migrations/`."""
    checkout_head = head_revision()
    site = tmp_path / "site-packages"
    stray = site / "migrations"
    stray.mkdir(parents=True)
    (stray / "env.py").write_text("raise SystemExit('not ours')\n")
    monkeypatch.setattr(schema, "CHECKOUT_ROOT", site)
    monkeypatch.setattr(schema, "INSTALLED_MIGRATIONS_DIR", site / "reautod" / "migrations")
    with pytest.raises(StoreError, match="reinstall the package") as info:
        schema.migrations_dir()
    assert info.value.code == "no_migrations"

    shutil.copytree(Path(__file__).resolve().parents[2] / "migrations",
                    site / "reautod" / "migrations")
    assert schema.migrations_dir() == site / "reautod" / "migrations"
    assert schema.head_revision() == checkout_head
