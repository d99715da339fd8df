"""Store fixtures: every test that takes `db` runs on SQLite (a temp file) and on Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reautod.config import DatabaseSettings
from reautod.store.database import Database

# Fast retries in tests: a dead database is detected in well under a second.
TEST_DB_SETTINGS = DatabaseSettings(
    pool_size=4,
    max_overflow=2,
    pool_timeout_s=2.0,
    connect_timeout_s=2.0,
    retry_attempts=2,
    write_queue_size=1000,
)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store' / 'reautod.db'}"
    return str(request.getfixturevalue("fresh_database_url"))


@pytest.fixture
async def empty_db(db_url: str) -> AsyncIterator[Database]:
    """An open Database with no schema yet."""
    db = Database(db_url, TEST_DB_SETTINGS)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def db(empty_db: Database) -> Database:
    """An open Database migrated to head."""
    await empty_db.upgrade("head")
    return empty_db
