"""Fixtures of the recovery tests: the store's database fixtures."""

from tests.store.conftest import db, db_url, empty_db

__all__ = ["db", "db_url", "empty_db"]
