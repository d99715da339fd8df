"""Recording rows: what a call recorded, and which recordings passed their retention date."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import RecordingStatus
from reautod.store.repositories._base import check_limit, table, to_dataclass

recordings = table(m.Recording)


@dataclass(frozen=True)
class RecordingRow:
    id: uuid.UUID
    call_id: uuid.UUID
    direction: str
    path: str
    format: str
    sample_rate: int
    channels: int
    duration_ms: int
    size_bytes: int
    sha256: str
    encrypted: bool
    consent_recorded: bool
    consent_detail: str | None
    retention_until: datetime | None
    status: str
    created_at: datetime


class RecordingRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def for_call(self, call_id: uuid.UUID) -> list[RecordingRow]:
        async def work(conn: AsyncConnection) -> list[RecordingRow]:
            rows = await conn.execute(
                select(recordings).where(recordings.c.call_id == call_id).order_by(recordings.c.direction)
            )
            return [to_dataclass(RecordingRow, r) for r in rows]

        return await self.db.read(work)

    async def expired(self, now: datetime, limit: int = 500, *,
                      undated_before: datetime | None = None) -> list[RecordingRow]:
        """Final recordings whose retention date has passed, and (with `undated_before`) those
        without a date created before it (the retention job deletes the files, then calls
        `mark_deleted`)."""
        if now.tzinfo is None or (undated_before is not None and undated_before.tzinfo is None):
            raise ValidationError("now and undated_before must be timezone-aware")
        check_limit(limit)
        due = recordings.c.retention_until <= now
        if undated_before is not None:
            due = or_(due, and_(recordings.c.retention_until.is_(None),
                                recordings.c.created_at <= undated_before))

        async def work(conn: AsyncConnection) -> list[RecordingRow]:
            rows = await conn.execute(
                select(recordings)
                .where(recordings.c.status == RecordingStatus.FINAL.value, due)
                .order_by(recordings.c.created_at)
                .limit(limit)
            )
            return [to_dataclass(RecordingRow, r) for r in rows]

        return await self.db.read(work)

    async def known_paths(self, paths: Iterable[str]) -> set[str]:
        """Which of `paths` a recordings row names (files without one are orphans)."""
        wanted = list(paths)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            batch = wanted[start:start + 500]

            async def work(conn: AsyncConnection, batch: list[str] = batch) -> list[str]:
                rows = await conn.execute(select(recordings.c.path)
                                          .where(recordings.c.path.in_(batch)))
                return list(rows.scalars())

            found.update(await self.db.read(work))
        return found

    async def mark_deleted(self, recording_id: uuid.UUID) -> None:
        async def work(conn: AsyncConnection) -> None:
            result = await conn.execute(
                update(recordings)
                .where(recordings.c.id == recording_id)
                .values(status=RecordingStatus.DELETED.value)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no recording {recording_id}")

        await self.db.transaction(work)

    async def relocate(self, old_dir: str, new_dir: str) -> int:
        """Point every recording under `old_dir` at the same file under `new_dir` (a restore
        into another state directory); returns how many rows changed."""
        old_prefix, new_prefix = old_dir.rstrip("/") + "/", new_dir.rstrip("/") + "/"

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                update(recordings)
                .where(func.substr(recordings.c.path, 1, len(old_prefix)) == old_prefix)
                .values(path=literal(new_prefix).concat(func.substr(recordings.c.path, len(old_prefix) + 1)))
            )
            return int(result.rowcount)

        return await self.db.transaction(work)
