"""The audit log: append-only (the database refuses UPDATE and uncovered DELETE) and hash-chained.

Each entry's `hash` is SHA-256 over the previous entry's hash and the entry's own canonical
content (version 1: the JSON of `AuditContent.canonical()`, keys sorted, ASCII, no spaces), so
changing, removing or inserting any entry breaks every link after it; `verify()` walks the chain
and names the first entry that does not fit.

Appends are serialised: on Postgres by a transaction-scoped advisory lock (two daemons on one
database append one after the other), on SQLite by the write lock every transaction takes. The
UNIQUE(prev_hash) constraint is the backstop: two entries can never claim one predecessor.

Pruning (the retention job) deletes the oldest entries and records an anchor (the last pruned
entry's id and hash) in the same transaction; verification then starts from the anchor. The
chain proves the log was not edited by anyone who did not also recompute every later hash:
keep the head hash `verify()` reports somewhere else (a ticket, a print-out) to extend that
proof to someone with full database access.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import check_limit, table, to_dataclass
from reautod.store.types import utcnow

audit_log = table(m.AuditEntry)
audit_anchors = table(m.AuditAnchor)

GENESIS = "0" * 64
CHAIN_VERSION = 1
# pg_advisory_xact_lock key that serialises audit appends (any constant both sides agree on)
_APPEND_LOCK = 0x72656175_61756474  # "reau" "audt"
_VERIFY_BATCH = 1000


@dataclass(frozen=True)
class AuditContent:
    """What an entry's hash covers (everything but its id and the hashes)."""

    at: datetime
    actor: str
    action: str
    origin: str | None
    outcome: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]

    def canonical(self) -> bytes:
        return json.dumps(
            {
                "v": CHAIN_VERSION,
                "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
                "actor": self.actor,
                "action": self.action,
                "origin": self.origin,
                "outcome": self.outcome,
                "target_type": self.target_type,
                "target_id": self.target_id,
                "detail": self.detail,
            },
            sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
        ).encode("ascii")


def chain_hash(prev_hash: str, content: AuditContent) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content.canonical()).hexdigest()


def _normalise(value: Any, where: str = "detail") -> Any:
    """JSON values that come back from either database exactly as they went in: integral
    floats become ints (Postgres' JSONB would print 1e20 as an integer); NaN is refused."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValidationError(f"audit {where}: keys must be strings")
        return {k: _normalise(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v, where) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"audit {where}: not a finite number")
        return int(value) if value.is_integer() else value
    if value is None or isinstance(value, str | int | bool):
        return value
    raise ValidationError(f"audit {where}: {type(value).__name__} is not JSON")


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]
    origin: str | None
    outcome: str
    prev_hash: str
    hash: str

    def content(self) -> AuditContent:
        return AuditContent(self.at, self.actor, self.action, self.origin, self.outcome,
                            self.target_type, self.target_id, self.detail)


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the chain: intact, or the first entry that does not fit and why."""

    ok: bool
    entries: int  # entries checked (up to and including the first bad one)
    head_hash: str  # the last good hash (the anchor's or GENESIS when the log is empty)
    starts_after: int | None  # the anchor's through_id when old entries were pruned
    first_bad_id: int | None = None
    problem: str | None = None


async def _head(conn: AsyncConnection) -> str:
    last = (await conn.execute(
        select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1))).scalar()
    if last is not None:
        return str(last)
    return (await _anchor(conn))[1]


async def _anchor(conn: AsyncConnection) -> tuple[int | None, str]:
    row = (await conn.execute(
        select(audit_anchors.c.through_id, audit_anchors.c.through_hash)
        .order_by(audit_anchors.c.id.desc()).limit(1))).first()
    return (None, GENESIS) if row is None else (int(row[0]), str(row[1]))


async def _batch(conn: AsyncConnection, after: int) -> list[AuditRow]:
    rows = await conn.execute(select(audit_log).where(audit_log.c.id > after)
                              .order_by(audit_log.c.id).limit(_VERIFY_BATCH))
    return [to_dataclass(AuditRow, r) for r in rows]


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
    # SQLite: every transaction already holds the database's write lock (BEGIN IMMEDIATE)


async def insert_audit(
    conn: AsyncConnection,
    actor: str,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    detail: dict[str, Any] | None = None,
    origin: str | None = None,
    outcome: str = "ok",
    at: datetime | None = None,
) -> int:
    """Chain one entry inside the caller's transaction (a change and its audit entry commit
    together; on Postgres the append lock is then held until that transaction ends)."""
    if not actor or not action or not outcome:
        raise ValidationError("audit entries need an actor, an action and an outcome")
    clean = _normalise(detail or {})
    await _lock(conn)
    prev = await _head(conn)
    content = AuditContent(at or utcnow(), actor[:128], action[:64],
                           origin[:128] if origin else None, outcome[:64], target_type,
                           target_id, clean)
    result = await conn.execute(
        insert(audit_log)
        .values(at=content.at, actor=content.actor, action=content.action,
                target_type=target_type, target_id=target_id, detail=clean,
                origin=content.origin, outcome=content.outcome, prev_hash=prev,
                hash=chain_hash(prev, content))
        .returning(audit_log.c.id)
    )
    return int(result.scalar_one())


class AuditRepository:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def append(
        self,
        actor: str,
        action: str,
        *,
        target_type: str | None = None,
        target_id: str | None = None,
        detail: dict[str, Any] | None = None,
        origin: str | None = None,
        outcome: str = "ok",
    ) -> int:
        """Chain one entry: who (`actor`) did what (`action`) to which id, from where, with what
        result. `detail` must hold no personal data."""

        async def work(conn: AsyncConnection) -> int:
            return await insert_audit(conn, actor, action, target_type=target_type,
                                      target_id=target_id, detail=detail, origin=origin,
                                      outcome=outcome, at=self.clock())

        return await self.db.transaction(work)

    async def recent(self, limit: int = 100, since: datetime | None = None) -> list[AuditRow]:
        """The newest entries first (those at or after `since` when given)."""
        check_limit(limit)

        async def work(conn: AsyncConnection) -> list[AuditRow]:
            query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
            if since is not None:
                query = query.where(audit_log.c.at >= since)
            return [to_dataclass(AuditRow, r) for r in await conn.execute(query)]

        return await self.db.read(work)

    async def verify(self) -> ChainReport:
        """Walk the whole chain in id order, recomputing every hash (in short read
        transactions, so appends go on meanwhile)."""
        starts_after, expected = await self.db.read(_anchor)
        checked, last_id = 0, 0
        while True:
            rows = await self.db.read(functools.partial(_batch, after=last_id))
            for row in rows:
                checked += 1
                if row.prev_hash != expected:
                    return ChainReport(False, checked, expected, starts_after, row.id,
                                       "does not follow the entry before it (an entry was "
                                       "removed or inserted before this one)")
                if chain_hash(row.prev_hash, row.content()) != row.hash:
                    return ChainReport(False, checked, expected, starts_after, row.id,
                                       "its content was changed after it was written")
                expected = row.hash
            if len(rows) < _VERIFY_BATCH:
                return ChainReport(True, checked, expected, starts_after)
            last_id = rows[-1].id

    async def prune(self, before: datetime) -> int:
        """Delete the entries written before `before` (oldest first, stopping at the first
        newer one so the rest stays one chain), anchoring the chain at the last one removed."""
        if before.tzinfo is None:
            raise ValidationError("before must be timezone-aware")

        async def work(conn: AsyncConnection) -> int:
            await _lock(conn)
            first_kept = (await conn.execute(
                select(func.min(audit_log.c.id)).where(audit_log.c.at >= before))).scalar()
            bound = select(audit_log.c.id, audit_log.c.hash)
            if first_kept is not None:
                bound = bound.where(audit_log.c.id < first_kept)
            last = (await conn.execute(bound.order_by(audit_log.c.id.desc()).limit(1))).first()
            if last is None:
                return 0
            through_id, through_hash = int(last[0]), str(last[1])
            count = int((await conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.id <= through_id))).scalar_one())
            await conn.execute(insert(audit_anchors).values(
                through_id=through_id, through_hash=through_hash, pruned=count, at=self.clock()))
            await conn.execute(delete(audit_log).where(audit_log.c.id <= through_id))
            return count

        return await self.db.transaction(work)
