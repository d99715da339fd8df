"""Dialogue fixtures: the store fixtures (SQLite and Postgres), the example playbooks, a clock."""

from __future__ import annotations

from tests.store.conftest import db, db_url, empty_db  # noqa: F401  (fixtures, both backends)
