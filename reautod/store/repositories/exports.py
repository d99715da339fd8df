"""Rows for exports, read page by page so that no export ever holds a whole table in memory.

Pages are keyset pages: each is one short read ordered by (created_at, id) and starting after
the last row of the previous page. Unlike one long server-side cursor this holds no transaction
(and on SQLite no lock) open while the consumer writes, and works the same on both backends;
the price is that rows written during the export may or may not appear in it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import check_limit, table, to_dataclass

T = TypeVar("T")

leads, contacts, campaigns = table(m.Lead), table(m.Contact), table(m.Campaign)
calls, turns, appointments = table(m.Call), table(m.Turn), table(m.Appointment)


@dataclass(frozen=True)
class LeadExport:
    lead_id: uuid.UUID
    campaign: str
    contact_id: uuid.UUID
    phone: str
    name: str | None
    email: str | None
    timezone: str | None
    status: str
    attempts: int
    score: int | None
    dnc: bool
    consent_status: str
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class CallExport:
    call_id: uuid.UUID
    call_sid: str | None
    campaign: str | None
    lead_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    direction: str
    status: str
    outcome: str | None
    disposition: str | None
    amd_result: str | None
    from_number: str | None
    to_number: str | None
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None


@dataclass(frozen=True)
class TurnExport:
    call_id: uuid.UUID
    campaign: str | None
    seq: int
    speaker: str
    text: str
    started_at: datetime
    ended_at: datetime | None
    stt_confidence: float | None
    interrupted: bool


@dataclass(frozen=True)
class AppointmentExport:
    appointment_id: uuid.UUID
    campaign: str | None
    contact_id: uuid.UUID
    name: str | None
    phone: str
    call_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime
    timezone: str | None
    status: str
    calendar_ref: str | None
    notes: str | None
    created_at: datetime


def _filtered(query: Select[Any], created: Any, campaign_col: Any,
              campaign_id: uuid.UUID | None, since: datetime | None) -> Select[Any]:
    if campaign_id is not None:
        query = query.where(campaign_col == campaign_id)
    if since is not None:
        query = query.where(created >= since)
    return query


class ExportRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _pages(self, query: Select[Any], created: Any, id_col: Any, cls: type[T],
                     page_size: int) -> AsyncIterator[list[T]]:
        check_limit(page_size, 10_000)
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            page_query = query.order_by(created, id_col).limit(page_size)
            if after is not None:
                # typed binds: the timestamp goes through UTCDateTime like the column
                key: ColumnElement[bool] = tuple_(created, id_col) > tuple_(
                    literal(after[0], created.type), literal(after[1], id_col.type))
                page_query = page_query.where(key)

            async def work(conn: AsyncConnection, q: Select[Any] = page_query) -> list[Any]:
                return list(await conn.execute(q))

            rows = await self.db.read(work)
            if not rows:
                return
            yield [to_dataclass(cls, r) for r in rows]
            if len(rows) < page_size:
                return
            after = (rows[-1]._mapping["_created"], rows[-1]._mapping["_id"])

    def leads(self, *, campaign_id: uuid.UUID | None = None, since: datetime | None = None,
              page_size: int = 1000) -> AsyncIterator[list[LeadExport]]:
        query = _filtered(
            select(leads.c.id.label("lead_id"), campaigns.c.name.label("campaign"),
                   leads.c.contact_id, contacts.c.phone_e164.label("phone"), contacts.c.name,
                   contacts.c.email, contacts.c.timezone, leads.c.status, leads.c.attempts,
                   leads.c.score, contacts.c.dnc, contacts.c.consent_status,
                   leads.c.last_attempt_at, leads.c.next_attempt_at, leads.c.created_at,
                   leads.c.created_at.label("_created"), leads.c.id.label("_id"))
            .select_from(leads.join(contacts, contacts.c.id == leads.c.contact_id)
                         .join(campaigns, campaigns.c.id == leads.c.campaign_id)),
            leads.c.created_at, leads.c.campaign_id, campaign_id, since)
        return self._pages(query, leads.c.created_at, leads.c.id, LeadExport, page_size)

    def calls(self, *, campaign_id: uuid.UUID | None = None, since: datetime | None = None,
              page_size: int = 1000) -> AsyncIterator[list[CallExport]]:
        query = _filtered(
            select(calls.c.id.label("call_id"), calls.c.call_sid,
                   campaigns.c.name.label("campaign"), calls.c.lead_id, calls.c.contact_id,
                   calls.c.direction, calls.c.status, calls.c.outcome, calls.c.disposition,
                   calls.c.amd_result, calls.c.from_number, calls.c.to_number, calls.c.created_at,
                   calls.c.answered_at, calls.c.ended_at, calls.c.duration_ms,
                   calls.c.created_at.label("_created"), calls.c.id.label("_id"))
            .select_from(calls.outerjoin(campaigns, campaigns.c.id == calls.c.campaign_id)),
            calls.c.created_at, calls.c.campaign_id, campaign_id, since)
        return self._pages(query, calls.c.created_at, calls.c.id, CallExport, page_size)

    async def transcripts(self, *, campaign_id: uuid.UUID | None = None,
                          since: datetime | None = None,
                          page_size: int = 200) -> AsyncIterator[list[TurnExport]]:
        """Turns of calls created since `since`, a page of calls at a time (a call's turns are
        few), in call order then turn order."""
        call_page = _filtered(
            select(calls.c.id.label("call_id"), calls.c.created_at.label("_created"),
                   calls.c.id.label("_id")),
            calls.c.created_at, calls.c.campaign_id, campaign_id, since)

        @dataclass(frozen=True)
        class _CallKey:
            call_id: uuid.UUID

        async for page in self._pages(call_page, calls.c.created_at, calls.c.id, _CallKey,
                                      page_size):
            ids = [c.call_id for c in page]
            query = (
                select(turns.c.call_id, campaigns.c.name.label("campaign"), turns.c.seq,
                       turns.c.speaker, turns.c.text, turns.c.started_at, turns.c.ended_at,
                       turns.c.stt_confidence, turns.c.interrupted)
                .select_from(turns.join(calls, calls.c.id == turns.c.call_id)
                             .outerjoin(campaigns, campaigns.c.id == calls.c.campaign_id))
                .where(turns.c.call_id.in_(ids))
                .order_by(calls.c.created_at, calls.c.id, turns.c.seq)
            )

            async def work(conn: AsyncConnection, q: Select[Any] = query) -> list[TurnExport]:
                return [to_dataclass(TurnExport, r) for r in await conn.execute(q)]

            found = await self.db.read(work)
            if found:
                yield found

    def appointments(self, *, campaign_id: uuid.UUID | None = None,
                     since: datetime | None = None,
                     page_size: int = 1000) -> AsyncIterator[list[AppointmentExport]]:
        query = _filtered(
            select(appointments.c.id.label("appointment_id"), campaigns.c.name.label("campaign"),
                   appointments.c.contact_id, contacts.c.name,
                   contacts.c.phone_e164.label("phone"), appointments.c.call_id,
                   appointments.c.starts_at, appointments.c.ends_at, appointments.c.timezone,
                   appointments.c.status, appointments.c.calendar_ref, appointments.c.notes,
                   appointments.c.created_at, appointments.c.created_at.label("_created"),
                   appointments.c.id.label("_id"))
            .select_from(appointments.join(contacts, contacts.c.id == appointments.c.contact_id)
                         .outerjoin(campaigns, campaigns.c.id == appointments.c.campaign_id)),
            appointments.c.created_at, appointments.c.campaign_id, campaign_id, since)
        return self._pages(query, appointments.c.created_at, appointments.c.id,
                           AppointmentExport, page_size)
