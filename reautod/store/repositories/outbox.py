"""The webhook outbox: messages written in the same database as the facts they announce,
delivered later by a worker; retries back off and the last failure moves a message to the
dead letters (kept for an operator, never silently dropped)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import OutboxStatus
from reautod.store.repositories._base import check_limit, table, to_dataclass
from reautod.store.repositories._claim import claim_rows
from reautod.store.types import utcnow

outbox = table(m.WebhookOutbox)
dead_letters = table(m.WebhookDeadLetter)


@dataclass(frozen=True)
class OutboxMessage:
    id: uuid.UUID
    contact_id: uuid.UUID | None
    event_type: str
    target_url: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    id: uuid.UUID
    outbox_id: uuid.UUID | None
    event_type: str
    target_url: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    dead_at: datetime


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(
        self,
        event_type: str,
        target_url: str,
        payload: dict[str, Any],
        *,
        contact_id: uuid.UUID | None = None,
        message_id: uuid.UUID | None = None,
        conn: AsyncConnection | None = None,
    ) -> uuid.UUID:
        """Add a message; pass `conn` to write it in the caller's transaction (the outbox rule)."""
        if not event_type or not target_url.startswith(("https://", "http://")):
            raise ValidationError("outbox messages need an event type and an http(s) target URL")
        message_id = message_id or uuid.uuid4()
        now = utcnow()
        stmt = insert(outbox).values(
            id=message_id, contact_id=contact_id, event_type=event_type, target_url=target_url,
            payload=payload, status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now,
            created_at=now,
        )

        async def work(c: AsyncConnection) -> uuid.UUID:
            await c.execute(stmt)
            return message_id

        if conn is not None:
            return await work(conn)
        return await self.db.transaction(work)

    async def claim_due(self, now: datetime, limit: int = 20) -> list[OutboxMessage]:
        """Take due pending messages (status -> delivering); concurrent workers skip each other's."""
        check_limit(limit, 1000)

        async def work(conn: AsyncConnection) -> list[OutboxMessage]:
            due = (
                select(outbox.c.id)
                .where(outbox.c.status == OutboxStatus.PENDING.value, outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at)
                .limit(limit)
            )
            taken = {
                "status": OutboxStatus.DELIVERING.value,
                "attempts": outbox.c.attempts + 1,
                # the claim time, which `reset_stuck` measures from
                "next_attempt_at": now,
            }
            rows = await claim_rows(conn, outbox, due, taken)
            return [to_dataclass(OutboxMessage, r) for r in rows]

        return await self.db.transaction(work)

    async def delivered(self, message_id: uuid.UUID, at: datetime) -> None:
        async def work(conn: AsyncConnection) -> None:
            result = await conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(status=OutboxStatus.DELIVERED.value, delivered_at=at, last_error=None)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no outbox message {message_id}")

        await self.db.transaction(work)

    async def failed(
        self, message_id: uuid.UUID, error: str, *, retry_at: datetime | None
    ) -> bool:
        """Record a failed delivery: back to pending until `retry_at`, or (retry_at None) dead.
        Returns True when the message went to the dead letters."""

        async def work(conn: AsyncConnection) -> bool:
            row = (await conn.execute(select(outbox).where(outbox.c.id == message_id))).first()
            if row is None:
                raise NotFoundError(f"no outbox message {message_id}")
            if retry_at is not None:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == message_id)
                    .values(status=OutboxStatus.PENDING.value, next_attempt_at=retry_at,
                            last_error=error[:2000])
                )
                return False
            await conn.execute(
                insert(dead_letters).values(
                    id=uuid.uuid4(), outbox_id=message_id, contact_id=row.contact_id,
                    event_type=row.event_type, target_url=row.target_url, payload=row.payload,
                    attempts=row.attempts, last_error=error[:2000], dead_at=utcnow(),
                )
            )
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(status=OutboxStatus.DEAD.value, last_error=error[:2000])
            )
            return True

        return await self.db.transaction(work)

    async def reset_stuck(self, older_than: timedelta, now: datetime) -> int:
        """Messages claimed more than `older_than` ago and still `delivering` (their worker died)
        go back to pending."""

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.status == OutboxStatus.DELIVERING.value,
                    outbox.c.next_attempt_at <= now - older_than,
                )
                .values(status=OutboxStatus.PENDING.value)
            )
            return int(result.rowcount)

        return await self.db.transaction(work)

    async def dead(self, limit: int = 100) -> list[DeadLetter]:
        check_limit(limit)

        async def work(conn: AsyncConnection) -> list[DeadLetter]:
            rows = await conn.execute(
                select(dead_letters).order_by(dead_letters.c.dead_at.desc()).limit(limit)
            )
            return [to_dataclass(DeadLetter, r) for r in rows]

        return await self.db.read(work)

    async def purge_delivered(self, before: datetime) -> int:
        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                delete(outbox).where(
                    outbox.c.status == OutboxStatus.DELIVERED.value, outbox.c.delivered_at < before
                )
            )
            return int(result.rowcount)

        return await self.db.transaction(work)
