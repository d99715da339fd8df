"""Security tests run their store work on both backends with the store's own fixtures."""

from __future__ import annotations

from tests.store.conftest import db, db_url, empty_db

__all__ = ["db", "db_url", "empty_db"]
