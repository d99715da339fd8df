"""Deleting what is past its retention, in bounded batches (each its own short transaction, so
a large backlog never holds the database for long): transcripts (turns and agent transitions of
old calls) and call metadata (old calls with everything that hangs off them, dialing attempts
and blocked dials). Costs keep the money without the call (call_id set NULL)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import RecordingStatus
from reautod.store.repositories._base import table

calls = table(m.Call)
turns = table(m.Turn)
transitions = table(m.AgentTransition)
recordings = table(m.Recording)
attempts = table(m.CallAttempt)
dial_blocks = table(m.DialBlock)

BATCH = 500


def _aware(cutoff: datetime) -> datetime:
    if cutoff.tzinfo is None:
        raise ValidationError("retention cutoffs must be timezone-aware")
    return cutoff


class RetentionRepository:
    def __init__(self, db: Database, batch: int = BATCH) -> None:
        self.db = db
        self.batch = batch

    async def _delete_batches(self, t: Table, ids_query: Select[tuple[uuid.UUID]]) -> int:
        """Delete the rows `ids_query` selects (by id), a batch per transaction."""
        total = 0
        while True:

            async def work(conn: AsyncConnection) -> int:
                ids = list((await conn.execute(ids_query.limit(self.batch))).scalars())
                if ids:
                    await conn.execute(delete(t).where(t.c.id.in_(ids)))
                return len(ids)

            done = await self.db.transaction(work)
            total += done
            if done < self.batch:
                return total

    async def delete_transcripts(self, created_before: datetime) -> int:
        """Turns and agent transitions of calls created before the cutoff."""
        old_calls = select(calls.c.id).where(calls.c.created_at < _aware(created_before))
        removed = await self._delete_batches(
            turns, select(turns.c.id).where(turns.c.call_id.in_(old_calls)))
        return removed + await self._delete_batches(
            transitions, select(transitions.c.id).where(transitions.c.call_id.in_(old_calls)))

    async def recordings_of_calls_before(self, created_before: datetime) -> list[tuple[
            uuid.UUID, str]]:
        """(id, path) of final recordings of calls created before the cutoff: their files go
        before the calls do (rows cascade, files would not)."""

        async def work(conn: AsyncConnection) -> list[tuple[uuid.UUID, str]]:
            rows = await conn.execute(
                select(recordings.c.id, recordings.c.path)
                .join(calls, calls.c.id == recordings.c.call_id)
                .where(calls.c.created_at < _aware(created_before),
                       recordings.c.status == RecordingStatus.FINAL.value))
            return [(r[0], r[1]) for r in rows]

        return await self.db.read(work)

    async def delete_calls(self, created_before: datetime) -> dict[str, int]:
        """Calls created before the cutoff (their events, turns, transitions, recording rows and
        scores cascade), then dialing attempts and blocked dials older than it."""
        cutoff = _aware(created_before)
        return {
            "calls": await self._delete_batches(
                calls, select(calls.c.id).where(calls.c.created_at < cutoff)),
            "call_attempts": await self._delete_batches(
                attempts, select(attempts.c.id).where(attempts.c.created_at < cutoff)),
            "dial_blocks": await self._delete_batches(
                dial_blocks, select(dial_blocks.c.id).where(dial_blocks.c.at < cutoff)),
        }
