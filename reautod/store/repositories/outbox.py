"""The webhook outbox: messages written in the same database as the facts they announce,
delivered later by a worker; retries back off and the last failure moves a message to the
dead letters (kept for an operator, never silently dropped).

Invariants:
- One row is one delivery of one event to one endpoint; the deliveries of one event share its
  `event_id` (the receiver's idempotency key).
- Order per lead: a message is not due while an earlier message with the same `ordering_key` to
  the same `endpoint` is still pending or being delivered. A dead message no longer holds the
  later ones back (an operator decides about it). Messages of one `enqueue_many` batch get
  strictly increasing `created_at`, so the order they were given in is the order they go out.
- Claims mark rows `delivering`; a worker that dies leaves them to `reset_stuck`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import OutboxChannel, OutboxStatus
from reautod.store.repositories._base import check_limit, table, to_dataclass
from reautod.store.repositories._claim import claim_rows
from reautod.store.types import utcnow

outbox = table(m.WebhookOutbox)
dead_letters = table(m.WebhookDeadLetter)

_TARGET_SCHEMES = {
    OutboxChannel.WEBHOOK: ("https://", "http://"),
    OutboxChannel.SMS: ("sms:",),
    OutboxChannel.EMAIL: ("mailto:",),
    OutboxChannel.SHEETS: ("sheets:",),
}
_UNFINISHED = (OutboxStatus.PENDING.value, OutboxStatus.DELIVERING.value)


@dataclass(frozen=True)
class NewMessage:
    """A message to enqueue; `target_url` is http(s) for webhooks, sms:/mailto:/sheets: otherwise."""

    event_type: str
    target_url: str
    payload: dict[str, Any]
    event_id: uuid.UUID | None = None
    channel: OutboxChannel = OutboxChannel.WEBHOOK
    endpoint: str = "global"
    contact_id: uuid.UUID | None = None
    ordering_key: str | None = None
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def check(self) -> None:
        if not self.event_type or len(self.event_type) > 64:
            raise ValidationError("outbox messages need an event type (at most 64 characters)")
        if not self.endpoint or len(self.endpoint) > 64:
            raise ValidationError("outbox messages need an endpoint name (at most 64 characters)")
        if not self.target_url.startswith(_TARGET_SCHEMES[self.channel]):
            raise ValidationError(
                f"a {self.channel.value} message needs a "
                f"{' or '.join(_TARGET_SCHEMES[self.channel])} target, got {self.target_url[:40]!r}"
            )
        if self.ordering_key is not None and len(self.ordering_key) > 64:
            raise ValidationError("an ordering key is at most 64 characters")


@dataclass(frozen=True)
class OutboxMessage:
    id: uuid.UUID
    event_id: uuid.UUID | None
    channel: str
    endpoint: str
    ordering_key: str | None
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
    endpoint: str | None  # from the outbox row, when it still exists
    channel: str | None


@dataclass(frozen=True)
class OutboxCounts:
    """Messages by status and endpoint, and the age of the oldest undelivered one."""

    by_status: dict[str, int]
    by_endpoint: dict[str, dict[str, int]]
    dead_letters: int
    oldest_pending_at: datetime | None


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
        """One webhook message to the global endpoint (see `enqueue_many` for the rest)."""
        message = NewMessage(event_type, target_url, payload, contact_id=contact_id,
                             message_id=message_id or uuid.uuid4())
        [added] = await self.enqueue_many([message], conn=conn)
        return added

    async def enqueue_many(
        self, messages: Sequence[NewMessage], *, conn: AsyncConnection | None = None
    ) -> list[uuid.UUID]:
        """Add messages in order; pass `conn` to write them in the caller's transaction (the
        outbox rule: the fact and its announcement commit together)."""
        for message in messages:
            message.check()
        if not messages:
            return []
        now = utcnow()
        rows = [
            {
                "id": msg.message_id, "event_id": msg.event_id, "channel": msg.channel.value,
                "endpoint": msg.endpoint, "ordering_key": msg.ordering_key,
                "contact_id": msg.contact_id, "event_type": msg.event_type,
                "target_url": msg.target_url, "payload": msg.payload,
                "status": OutboxStatus.PENDING.value, "attempts": 0, "next_attempt_at": now,
                # strictly increasing within the batch: the order given is the delivery order
                "created_at": now + timedelta(microseconds=i),
            }
            for i, msg in enumerate(messages)
        ]

        async def work(c: AsyncConnection) -> list[uuid.UUID]:
            await c.execute(insert(outbox), rows)
            return [msg.message_id for msg in messages]

        if conn is not None:
            return await work(conn)
        return await self.db.transaction(work)

    async def claim_due(self, now: datetime, limit: int = 20) -> list[OutboxMessage]:
        """Take due pending messages (status -> delivering) whose lead has no earlier message
        to the same endpoint still undelivered; concurrent workers skip each other's."""
        check_limit(limit, 1000)
        earlier = outbox.alias("earlier")
        held_back = (
            select(earlier.c.id)
            .where(
                earlier.c.ordering_key == outbox.c.ordering_key,
                earlier.c.endpoint == outbox.c.endpoint,
                earlier.c.status.in_(_UNFINISHED),
                tuple_(earlier.c.created_at, earlier.c.id) < tuple_(outbox.c.created_at, outbox.c.id),
            )
            .exists()
        )

        async def work(conn: AsyncConnection) -> list[OutboxMessage]:
            due = (
                select(outbox.c.id)
                .where(
                    outbox.c.status == OutboxStatus.PENDING.value,
                    outbox.c.next_attempt_at <= now,
                    or_(outbox.c.ordering_key.is_(None), ~held_back),
                )
                .order_by(outbox.c.next_attempt_at, outbox.c.created_at)
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
        self, message_id: uuid.UUID, error: str, *, retry_at: datetime | None,
        attempted: bool = True,
    ) -> bool:
        """Record a failed delivery: back to pending until `retry_at`, or (retry_at None) dead.
        `attempted=False` (the receiver's circuit was open: nothing was sent) gives the claim's
        attempt back, so an outage never turns messages into dead letters. Returns True when the
        message went to the dead letters."""

        async def work(conn: AsyncConnection) -> bool:
            row = (await conn.execute(select(outbox).where(outbox.c.id == message_id))).first()
            if row is None:
                raise NotFoundError(f"no outbox message {message_id}")
            if retry_at is not None:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == message_id)
                    .values(status=OutboxStatus.PENDING.value, next_attempt_at=retry_at,
                            last_error=error[:2000],
                            attempts=outbox.c.attempts - (0 if attempted else 1))
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

    async def get(self, message_id: uuid.UUID) -> OutboxMessage:
        async def work(conn: AsyncConnection) -> OutboxMessage:
            row = (await conn.execute(select(outbox).where(outbox.c.id == message_id))).first()
            if row is None:
                raise NotFoundError(f"no outbox message {message_id}")
            return to_dataclass(OutboxMessage, row)

        return await self.db.read(work)

    async def of_event(self, event_id: uuid.UUID) -> list[OutboxMessage]:
        """Every delivery of one event (all endpoints and channels), oldest first."""

        async def work(conn: AsyncConnection) -> list[OutboxMessage]:
            rows = await conn.execute(
                select(outbox).where(outbox.c.event_id == event_id).order_by(outbox.c.created_at)
            )
            return [to_dataclass(OutboxMessage, r) for r in rows]

        return await self.db.read(work)

    async def recent(
        self,
        *,
        status: OutboxStatus | None = None,
        endpoint: str | None = None,
        limit: int = 100,
    ) -> list[OutboxMessage]:
        """Messages, newest first, optionally of one status and endpoint."""
        check_limit(limit)
        query = select(outbox).order_by(outbox.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(outbox.c.status == status.value)
        if endpoint is not None:
            query = query.where(outbox.c.endpoint == endpoint)

        async def work(conn: AsyncConnection) -> list[OutboxMessage]:
            return [to_dataclass(OutboxMessage, r) for r in await conn.execute(query)]

        return await self.db.read(work)

    async def counts(self) -> OutboxCounts:
        async def work(conn: AsyncConnection) -> OutboxCounts:
            rows = await conn.execute(
                select(outbox.c.endpoint, outbox.c.status, func.count())
                .group_by(outbox.c.endpoint, outbox.c.status)
            )
            by_status: dict[str, int] = {s.value: 0 for s in OutboxStatus}
            by_endpoint: dict[str, dict[str, int]] = {}
            for endpoint, status, count in rows:
                by_status[status] += count
                by_endpoint.setdefault(endpoint, {})[status] = count
            dead = (await conn.execute(select(func.count()).select_from(dead_letters))).scalar_one()
            oldest = (
                await conn.execute(
                    select(func.min(outbox.c.created_at)).where(outbox.c.status.in_(_UNFINISHED))
                )
            ).scalar_one()
            return OutboxCounts(by_status, by_endpoint, int(dead), oldest)

        return await self.db.read(work)

    async def dead(self, limit: int = 100) -> list[DeadLetter]:
        check_limit(limit)

        async def work(conn: AsyncConnection) -> list[DeadLetter]:
            rows = await conn.execute(
                select(dead_letters, outbox.c.endpoint, outbox.c.channel)
                .select_from(dead_letters.outerjoin(outbox, outbox.c.id == dead_letters.c.outbox_id))
                .order_by(dead_letters.c.dead_at.desc())
                .limit(limit)
            )
            return [to_dataclass(DeadLetter, r) for r in rows]

        return await self.db.read(work)

    async def retry(self, ids: Sequence[uuid.UUID] | None, now: datetime) -> list[uuid.UUID]:
        """Dead messages back into the queue, due now with a fresh attempt count; `ids` are
        outbox or dead-letter ids (None: every dead letter). Their dead-letter rows go.
        Returns the outbox ids requeued; an id that is neither raises NotFoundError."""

        async def work(conn: AsyncConnection) -> list[uuid.UUID]:
            query = select(dead_letters.c.id, dead_letters.c.outbox_id)
            if ids is not None:
                query = query.where(
                    or_(dead_letters.c.id.in_(ids), dead_letters.c.outbox_id.in_(ids))
                )
            found = list(await conn.execute(query))
            if ids is not None:
                known = {r.id for r in found} | {r.outbox_id for r in found}
                missing = [str(i) for i in ids if i not in known]
                if missing:
                    raise NotFoundError(f"no dead letter {', '.join(missing)}")
            requeued = [r.outbox_id for r in found if r.outbox_id is not None]
            if requeued:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(requeued), outbox.c.status == OutboxStatus.DEAD.value)
                    .values(status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now)
                )
            if found:
                await conn.execute(
                    delete(dead_letters).where(dead_letters.c.id.in_([r.id for r in found]))
                )
            return requeued

        return await self.db.transaction(work)

    async def replay(
        self,
        since: datetime,
        *,
        endpoint: str | None = None,
        event_type: str | None = None,
        limit: int = 10_000,
    ) -> list[uuid.UUID]:
        """Deliver again what was delivered since `since`: a new message per delivery, same
        event id and body (so the receiver can tell it is the same event), due now."""
        check_limit(limit, 100_000)
        query = (
            select(outbox)
            .where(outbox.c.status == OutboxStatus.DELIVERED.value, outbox.c.created_at >= since)
            .order_by(outbox.c.created_at)
            .limit(limit)
        )
        if endpoint is not None:
            query = query.where(outbox.c.endpoint == endpoint)
        if event_type is not None:
            query = query.where(outbox.c.event_type == event_type)

        async def work(conn: AsyncConnection) -> list[uuid.UUID]:
            again = [
                NewMessage(
                    r.event_type, r.target_url, r.payload, event_id=r.event_id,
                    channel=OutboxChannel(r.channel), endpoint=r.endpoint,
                    contact_id=r.contact_id, ordering_key=r.ordering_key,
                )
                for r in await conn.execute(query)
            ]
            return await self.enqueue_many(again, conn=conn)

        return await self.db.transaction(work)

    async def purge_delivered(self, before: datetime) -> int:
        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                delete(outbox).where(
                    and_(outbox.c.status == OutboxStatus.DELIVERED.value,
                         outbox.c.delivered_at < before)
                )
            )
            return int(result.rowcount)

        return await self.db.transaction(work)

