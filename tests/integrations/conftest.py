"""Integration fixtures: a migrated database (SQLite, or Postgres where it matters), systemd-style
credentials in a temp dir, a clock the tests move by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reautod.integrations.credentials import Credentials
from reautod.store.database import Database
from reautod.store.writebehind import WriteBehind
from tests.integrations.radicale_server import Radicale, clear_events, radicale
from tests.store.conftest import TEST_DB_SETTINGS


async def open_db(url: str) -> Database:
    db = Database(url, TEST_DB_SETTINGS)
    await db.open()
    await db.upgrade("head")
    return db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database (the embedded default)."""
    database = await open_db(f"sqlite+aiosqlite:///{tmp_path / 'reautod.db'}")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def pg_db(fresh_database_url: str) -> AsyncIterator[Database]:
    """A migrated Postgres database."""
    database = await open_db(fresh_database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(scope="session")
def radicale_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    with radicale(tmp_path_factory.mktemp("radicale")) as running:
        yield running


@pytest.fixture
async def writer(db: Database, tmp_path: Path) -> AsyncIterator[WriteBehind]:
    """The write-behind queue over `db`, as the daemon runs it."""
    wb = WriteBehind(db, tmp_path / "spool", queue_size=100)
    await wb.start()
    try:
        yield wb
    finally:
        await wb.stop()


@pytest.fixture
def caldav_server(radicale_session: Radicale) -> Radicale:
    """The test run's Radicale, its calendar emptied for this test."""
    clear_events(radicale_session)
    return radicale_session


@pytest.fixture
def credentials(tmp_path: Path) -> Callable[..., Credentials]:
    """`credentials(name=value, ...)`: files in a fresh $CREDENTIALS_DIRECTORY, read back."""
    directory = tmp_path / "credentials"
    directory.mkdir()

    def make(**values: str) -> Credentials:
        for name, value in values.items():
            (directory / name).write_text(value + "\n")
        return Credentials({"CREDENTIALS_DIRECTORY": str(directory)})

    return make


class Clock:
    """A UTC clock moved by hand; it starts a little ahead of the wall clock, so that messages
    the test enqueues (stamped with the real time) are due at once."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC) + timedelta(seconds=30)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
