"""Everything the store holds about one phone number, to export it or erase it, and the log of
subject requests.

A subject is found by number: its contacts, their leads, and every call that belongs to one of
them or names the number (inbound calls from unknown numbers have no contact). Which rows hang
off those is read from the schema itself, so a table added later is covered without a change
here: every table with a foreign key to contacts, leads or calls holds the subject's rows where
that key is one of theirs. Beyond keys: do-not-call entries by number, outbox messages and dead
letters whose payload holds the number, the subject's earlier requests (by hash) and audit
entries about its contacts and calls (ids only).

Exported rows are JSON-ready dicts, column name to value: the archive shows the person what is
stored, column by column, so the shape is the table's own. Erasure deletes, in one transaction
and children first, the rows of every table whose key to the subject cascades (the row exists
because of the person) plus the number's DNC entries and the outbox payloads naming it; rows
whose key is SET NULL (costs, reconciliations) stay without the link, and the request and audit
logs, which hold no number, stay.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Table, Text, cast, delete, false, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import PrivacyRegime, PrivacyRequestKind, PrivacyRequestStatus
from reautod.store.repositories._base import check_e164, check_limit, to_dataclass
from reautod.store.repositories.recordings import RecordingRow
from reautod.store.sql import upsert

_PARENTS = ("contacts", "leads", "calls")
# Tables that never hold the subject's data, whatever their keys say.
_NOT_SUBJECT_DATA = frozenset({"erased_subjects", "audit_anchors"})
T: dict[str, Table] = {t.name: t for t in m.Base.metadata.sorted_tables}


@dataclass(frozen=True)
class _Link:
    column: Any
    parent: str
    cascades: bool


def _links(t: Table) -> list[_Link]:
    """`t`'s foreign keys to the subject's own rows (contacts, leads, calls)."""
    return [_Link(fk.parent, fk.column.table.name, (fk.ondelete or "").upper() == "CASCADE")
            for fk in t.foreign_keys if fk.column.table.name in _PARENTS
            and fk.column.name == "id"]


@dataclass(frozen=True)
class Scope:
    phone: str
    contact_ids: frozenset[uuid.UUID]
    lead_ids: frozenset[uuid.UUID]
    call_ids: frozenset[uuid.UUID]


@dataclass(frozen=True)
class SubjectRows:
    scope: Scope
    tables: dict[str, list[dict[str, Any]]]  # table name -> rows as JSON-ready column dicts
    recordings: list[RecordingRow]
    call_sids: list[str]  # the calls as Twilio knows them (a processor to notify)


@dataclass(frozen=True)
class PrivacyRequestRow:
    id: uuid.UUID
    kind: str
    regime: str
    subject_hash: str
    actor: str
    received_at: datetime
    acknowledge_by: datetime | None
    due_at: datetime
    status: str
    completed_at: datetime | None
    receipt: dict[str, Any]


def _in(column: Any, ids: frozenset[uuid.UUID]) -> ColumnElement[bool]:
    return column.in_(sorted(ids)) if ids else false()


def _mentions(t: Table, phone: str) -> ColumnElement[bool]:
    return cast(t.c.payload, Text).contains(phone)


def _conditions(scope: Scope, subject_hash: str) -> dict[str, ColumnElement[bool]]:
    """Which rows of each table are the subject's (tables with none left out)."""
    ids = {"contacts": scope.contact_ids, "leads": scope.lead_ids, "calls": scope.call_ids}
    out: dict[str, ColumnElement[bool]] = {
        parent: _in(T[parent].c.id, ids[parent]) for parent in _PARENTS}
    for name, t in T.items():
        if name in _PARENTS or name in _NOT_SUBJECT_DATA:
            continue
        found = [_in(link.column, ids[link.parent]) for link in _links(t)]
        if "payload" in t.c:  # messages to other systems: the number in what is sent
            found.append(_mentions(t, scope.phone))
        if found:
            out[name] = or_(*found)
    out["dnc_entries"] = T["dnc_entries"].c.phone_e164 == scope.phone
    out["privacy_requests"] = T["privacy_requests"].c.subject_hash == subject_hash
    out["audit_log"] = T["audit_log"].c.target_id.in_(
        sorted(str(i) for i in scope.contact_ids | scope.call_ids))
    return out


def _erased_tables() -> list[str]:
    """Children before parents: the tables whose rows exist because of the person."""
    owned = {name for name, t in T.items()
             if name not in _NOT_SUBJECT_DATA and any(link.cascades for link in _links(t))}
    owned |= {*_PARENTS, "dnc_entries"}
    return [t.name for t in reversed(m.Base.metadata.sorted_tables) if t.name in owned]


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


async def _scope(conn: AsyncConnection, phone: str) -> Scope:
    contacts, leads, calls = T["contacts"], T["leads"], T["calls"]
    c = frozenset((await conn.execute(
        select(contacts.c.id).where(contacts.c.phone_e164 == phone))).scalars())
    lead_ids = frozenset((await conn.execute(
        select(leads.c.id).where(_in(leads.c.contact_id, c)))).scalars())
    call_ids = frozenset((await conn.execute(select(calls.c.id).where(or_(
        _in(calls.c.contact_id, c), _in(calls.c.lead_id, lead_ids),
        calls.c.to_number == phone, calls.c.from_number == phone)))).scalars())
    return Scope(phone, c, lead_ids, call_ids)


class PrivacyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def collect(self, phone_e164: str, subject_hash: str) -> SubjectRows:
        """Every row about the number, per table."""
        check_e164(phone_e164)

        async def work(conn: AsyncConnection) -> SubjectRows:
            scope = await _scope(conn, phone_e164)
            tables: dict[str, list[dict[str, Any]]] = {}
            for name, condition in _conditions(scope, subject_hash).items():
                t = T[name]
                rows = await conn.execute(
                    select(t).where(condition).order_by(*t.primary_key.columns))
                tables[name] = [{k: _jsonable(v) for k, v in r._mapping.items()} for r in rows]
            recordings = [to_dataclass(RecordingRow, r) for r in await conn.execute(
                select(T["recordings"]).where(_in(T["recordings"].c.call_id, scope.call_ids)))]
            sids = sorted(c["call_sid"] for c in tables["calls"] if c["call_sid"])
            return SubjectRows(scope, tables, recordings, sids)

        return await self.db.read(work)

    async def record_erasure(self, subject_hash: str, salt_id: str, request_id: uuid.UUID,
                             at: datetime) -> None:
        """The number is erased from now on (idempotent: a second erasure keeps the first)."""

        async def work(conn: AsyncConnection) -> None:
            stmt = upsert(conn, T["erased_subjects"]).values(
                subject_hash=subject_hash, salt_id=salt_id, erased_at=at, request_id=request_id)
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["subject_hash"]))

        await self.db.transaction(work)

    async def erase(self, scope: Scope, subject_hash: str) -> dict[str, int]:
        """Delete the subject's rows (as found again now, so calls that began since count),
        table by table in one transaction; rows removed per table."""

        async def work(conn: AsyncConnection) -> dict[str, int]:
            fresh = await _scope(conn, scope.phone)
            merged = Scope(scope.phone, scope.contact_ids | fresh.contact_ids,
                           scope.lead_ids | fresh.lead_ids, scope.call_ids | fresh.call_ids)
            conditions = _conditions(merged, subject_hash)
            counts = {}
            for name in _erased_tables():
                result = await conn.execute(delete(T[name]).where(conditions[name]))
                counts[name] = int(result.rowcount or 0)
            return counts

        return await self.db.transaction(work)

    # -- the request log -------------------------------------------------------------------------

    async def open_request(self, kind: PrivacyRequestKind, regime: PrivacyRegime,
                           subject_hash: str, actor: str, received_at: datetime,
                           acknowledge_by: datetime | None, due_at: datetime) -> uuid.UUID:
        request_id = uuid.uuid4()

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(insert(T["privacy_requests"]).values(
                id=request_id, kind=kind.value, regime=regime.value, subject_hash=subject_hash,
                actor=actor[:128], received_at=received_at, acknowledge_by=acknowledge_by,
                due_at=due_at, status=PrivacyRequestStatus.OPEN.value, receipt={}))

        await self.db.transaction(work)
        return request_id

    async def close_request(self, request_id: uuid.UUID, status: PrivacyRequestStatus,
                            at: datetime, receipt: dict[str, Any]) -> PrivacyRequestRow:
        t = T["privacy_requests"]

        async def work(conn: AsyncConnection) -> PrivacyRequestRow:
            result = await conn.execute(update(t).where(t.c.id == request_id).values(
                status=status.value, completed_at=at, receipt=receipt))
            if result.rowcount == 0:
                raise NotFoundError(f"no privacy request {request_id}")
            row = (await conn.execute(select(t).where(t.c.id == request_id))).one()
            return to_dataclass(PrivacyRequestRow, row)

        return await self.db.transaction(work)

    async def requests(self, *, open_only: bool = False,
                       limit: int = 200) -> Sequence[PrivacyRequestRow]:
        """Newest first; open ones by due date first when `open_only`."""
        check_limit(limit)
        t = T["privacy_requests"]

        async def work(conn: AsyncConnection) -> list[PrivacyRequestRow]:
            query = select(t).limit(limit)
            if open_only:
                query = query.where(t.c.status == PrivacyRequestStatus.OPEN.value).order_by(
                    t.c.due_at)
            else:
                query = query.order_by(t.c.received_at.desc())
            return [to_dataclass(PrivacyRequestRow, r) for r in await conn.execute(query)]

        return await self.db.read(work)
