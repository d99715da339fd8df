"""Calls and what hangs off them (status timeline, turns, agent transitions), read and written.

Writes go through the same idempotent record appliers as the write-behind queue; `write` is the
synchronous path (webhooks, the dialer), the queue is the call pipeline's path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError
from reautod.store import models as m
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.enums import AmdResult, CallOutcome, CallStatus
from reautod.store.records import CallStatusChanged, Record
from reautod.store.repositories._base import check_limit, table, to_dataclass

calls = table(m.Call)
call_events = table(m.CallEvent)
turns = table(m.Turn)
transitions = table(m.AgentTransition)


@dataclass(frozen=True)
class CallRow:
    id: uuid.UUID
    campaign_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    lead_id: uuid.UUID | None
    call_sid: str | None
    stream_sid: str | None
    direction: str
    transport: str
    status: str
    amd_result: str | None
    outcome: str | None
    disposition: str | None
    from_number: str | None
    to_number: str | None
    prompt_version: str | None
    playbook: str | None
    prompt_variant: str | None
    error_code: str | None
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None


@dataclass(frozen=True)
class CallEventRow:
    status: str
    at: datetime
    source: str
    sequence: int | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class TurnRow:
    id: uuid.UUID
    call_id: uuid.UUID
    seq: int
    speaker: str
    text: str
    agent: str | None
    stt_confidence: float | None
    interrupted: bool
    started_at: datetime
    ended_at: datetime | None
    stt_ms: int | None
    llm_first_token_ms: int | None
    llm_ms: int | None
    tts_first_byte_ms: int | None
    response_ms: int | None


@dataclass(frozen=True)
class AgentTransitionRow:
    id: uuid.UUID
    seq: int
    from_agent: str | None
    to_agent: str
    reason: str | None
    at: datetime


class CallRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def write(self, records: Sequence[Record]) -> None:
        """Apply records now, in one transaction (idempotent: a replayed webhook changes nothing)."""

        async def work(conn: AsyncConnection) -> None:
            await apply_records(conn, records)

        await self.db.transaction(work)

    async def record_status_by_sid(
        self,
        call_sid: str,
        status: CallStatus,
        at: datetime,
        *,
        sequence: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> CallRow:
        """A Twilio status callback: add to the timeline, move the status forward; by CallSid."""
        call = await self.by_sid(call_sid)
        if call is None:
            raise NotFoundError(f"no call with sid {call_sid}")
        record = CallStatusChanged(
            call_id=call.id, status=status, at=at, source="twilio", sequence=sequence,
            detail=detail or {},
        )
        await self.write([record])
        return await self.get(call.id)

    async def get(self, call_id: uuid.UUID) -> CallRow:
        async def work(conn: AsyncConnection) -> CallRow:
            row = (await conn.execute(select(calls).where(calls.c.id == call_id))).first()
            if row is None:
                raise NotFoundError(f"no call {call_id}")
            return to_dataclass(CallRow, row)

        return await self.db.read(work)

    async def by_sid(self, call_sid: str) -> CallRow | None:
        async def work(conn: AsyncConnection) -> CallRow | None:
            row = (await conn.execute(select(calls).where(calls.c.call_sid == call_sid))).first()
            return None if row is None else to_dataclass(CallRow, row)

        return await self.db.read(work)

    async def recent(
        self,
        *,
        campaign_id: uuid.UUID | None = None,
        status: CallStatus | None = None,
        limit: int = 50,
    ) -> list[CallRow]:
        check_limit(limit, 1000)

        async def work(conn: AsyncConnection) -> list[CallRow]:
            query = select(calls).order_by(calls.c.created_at.desc()).limit(limit)
            if campaign_id is not None:
                query = query.where(calls.c.campaign_id == campaign_id)
            if status is not None:
                query = query.where(calls.c.status == status.value)
            return [to_dataclass(CallRow, r) for r in await conn.execute(query)]

        return await self.db.read(work)

    async def timeline(self, call_id: uuid.UUID) -> list[CallEventRow]:
        async def work(conn: AsyncConnection) -> list[CallEventRow]:
            rows = await conn.execute(
                select(call_events)
                .where(call_events.c.call_id == call_id)
                .order_by(call_events.c.at, call_events.c.sequence)
            )
            return [to_dataclass(CallEventRow, r) for r in rows]

        return await self.db.read(work)

    async def turns(self, call_id: uuid.UUID) -> list[TurnRow]:
        async def work(conn: AsyncConnection) -> list[TurnRow]:
            rows = await conn.execute(
                select(turns).where(turns.c.call_id == call_id).order_by(turns.c.seq)
            )
            return [to_dataclass(TurnRow, r) for r in rows]

        return await self.db.read(work)

    async def transitions(self, call_id: uuid.UUID) -> list[AgentTransitionRow]:
        async def work(conn: AsyncConnection) -> list[AgentTransitionRow]:
            rows = await conn.execute(
                select(transitions)
                .where(transitions.c.call_id == call_id)
                .order_by(transitions.c.seq)
            )
            return [to_dataclass(AgentTransitionRow, r) for r in rows]

        return await self.db.read(work)

    async def set_result(
        self,
        call_id: uuid.UUID,
        *,
        outcome: CallOutcome | None = None,
        amd_result: AmdResult | None = None,
        error_code: str | None = None,
        replace_outcome: bool = False,
    ) -> None:
        """Telephony's part of a call's result. An outcome already set (by the conversation)
        is kept unless `replace_outcome` (an opt-out overrides whatever was said before)."""

        async def work(conn: AsyncConnection) -> None:
            values: dict[str, Any] = {}
            if amd_result is not None:
                values["amd_result"] = amd_result.value
            if error_code is not None:
                values["error_code"] = error_code[:64]
            if values:
                await conn.execute(update(calls).where(calls.c.id == call_id).values(**values))
            if outcome is not None:
                query = update(calls).where(calls.c.id == call_id)
                if not replace_outcome:
                    query = query.where(calls.c.outcome.is_(None))
                await conn.execute(query.values(outcome=outcome.value))

        await self.db.transaction(work)

    async def attempt_times(self, lead_id: uuid.UUID, since: datetime) -> list[datetime]:
        """When this lead's calls were created, since `since`, oldest first."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")

        async def work(conn: AsyncConnection) -> list[datetime]:
            rows = await conn.execute(
                select(calls.c.created_at)
                .where(calls.c.lead_id == lead_id, calls.c.created_at >= since)
                .order_by(calls.c.created_at)
            )
            return [at for (at,) in rows]

        return await self.db.read(work)
