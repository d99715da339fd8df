"""Cost tests use the store's database fixtures (SQLite and Postgres) and a controlled clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tests.store.conftest import db, db_url, empty_db

__all__ = ["Clock", "db", "db_url", "empty_db"]


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
