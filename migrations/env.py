"""Alembic environment: runs on the connection handed in by reautod.store.schema.

Used only through `reautod.store.Database` / `reautoctl db`; SQLite runs in batch mode so
ALTERs work there too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from reautod.store import models  # noqa: F401  (registers every table on the metadata)
from reautod.store.types import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `reautoctl db upgrade`, not the alembic command")
_run(connection)
