"""The claim step shared by the store's work queues (due leads, outbox messages)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, Select, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection


async def claim_rows(
    conn: AsyncConnection, table: Table, due: Select[Any], taken: Mapping[str, Any]
) -> list[Row[Any]]:
    """Take the rows `due` selects by writing `taken` on them; returns them as written, in the
    order `due` chose them. Call it inside the store's transaction; `due` must select `id`.

    On Postgres the selected rows are locked FOR UPDATE SKIP LOCKED, so concurrent claimers
    (several daemons on one database) skip each other's rows instead of waiting or taking them
    twice. SQLite has no row locks: the store opens every transaction with BEGIN IMMEDIATE, which
    serialises writers and gives the same guarantee.
    """
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = [row.id for row in await conn.execute(due)]
    if not ids:
        return []
    await conn.execute(update(table).where(table.c.id.in_(ids)).values(**taken))
    rows = {row.id: row for row in await conn.execute(select(table).where(table.c.id.in_(ids)))}
    return [rows[id_] for id_ in ids]
