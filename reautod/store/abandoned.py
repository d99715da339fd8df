"""Calls a previous process left unfinished, closed at start-up with the reason they ended.

A daemon that crashed (or was killed) leaves call rows in a non-final status (queued, initiated,
ringing, in_progress) that no webhook will ever finish; an inbound call whose media stream was
refused (at capacity) leaves its `ringing` row the same way. At start-up they are closed:

- status `failed` through the ordinary status record (so the status only moves forward and
  `ended_at` is set once); `ended_at` is the moment this process noticed, the real end being
  unknown; a `call_events` row (source `startup`, detail `{"reason": ...}`) says why;
- `error_code` the reason, unless the call already had one: `interrupted` for a call that was
  live or being placed (answered, in progress, or outbound), `rejected` for an inbound request
  that was never answered;
- the outcome the conversation decided stays; a call without one gets `failed` when no
  conversation happened (rejected) and `unknown` when one may have (interrupted).

Run this after the write-behind has replayed a previous run's spool, so an end that run did
record is applied first and not overruled. Several daemons may share one Postgres, where a young
open row may be another daemon's live call: there only rows older than `SHARED_HORIZON` are
closed (Twilio ends every call at its time limit, 4 h at most, after at most 10 minutes of
ringing). A SQLite file belongs to one daemon, so there every open row is its own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.enums import CallDirection, CallOutcome, CallStatus
from reautod.store.records import CallStatusChanged
from reautod.store.repositories.calls import calls

log = logging.getLogger(__name__)

SHARED_HORIZON = timedelta(hours=4, minutes=10)
OPEN_STATUSES = tuple(s.value for s in CallStatus if not s.terminal)
EVENT_SOURCE = "startup"


class AbandonReason(StrEnum):
    """Why a call a previous process left open was closed (stored as the call's error_code)."""

    INTERRUPTED = "interrupted"  # live or being placed when that process ended
    REJECTED = "rejected"  # an inbound request that was never answered


# what a call without a decided outcome gets, per reason (see the module docstring)
_OUTCOME = {AbandonReason.INTERRUPTED: CallOutcome.UNKNOWN,
            AbandonReason.REJECTED: CallOutcome.FAILED}


@dataclass(frozen=True)
class AbandonedCalls:
    """What one start-up closed, and the open rows it left to the daemon that may own them."""

    interrupted: int
    rejected: int
    left_open: int

    @property
    def closed(self) -> int:
        return self.interrupted + self.rejected


def abandon_reason(direction: str, status: str, answered: bool) -> AbandonReason:
    """The reason for closing an open call of this direction, status and answer."""
    if direction == CallDirection.INBOUND and status != CallStatus.IN_PROGRESS and not answered:
        return AbandonReason.REJECTED
    return AbandonReason.INTERRUPTED


async def close_abandoned_calls(db: Database, now: datetime,
                                keep: Collection[uuid.UUID] = ()) -> AbandonedCalls:
    """Close the open calls a previous process left (see the module docstring); counted, logged.
    `keep`: calls that may still be resumed from their checkpoint (reautod.recovery) stay open
    (counted in `left_open`); they are closed with `close_interrupted` when their window ends."""
    if now.tzinfo is None:
        raise ValidationError("now must be timezone-aware (UTC)")
    cutoff = now if db.backend == "sqlite" else now - SHARED_HORIZON

    async def work(conn: AsyncConnection) -> AbandonedCalls:
        rows = (await conn.execute(
            select(calls.c.id, calls.c.direction, calls.c.status, calls.c.answered_at,
                   calls.c.created_at)
            .where(calls.c.status.in_(OPEN_STATUSES))
        )).all()
        by_reason: dict[AbandonReason, list[uuid.UUID]] = {r: [] for r in AbandonReason}
        left_open = 0
        for row in rows:
            if row.created_at > cutoff or row.id in keep:
                left_open += 1
                continue
            reason = abandon_reason(row.direction, row.status, row.answered_at is not None)
            by_reason[reason].append(row.id)
        for reason, ids in by_reason.items():
            await _close(conn, ids, reason, now)
        return AbandonedCalls(len(by_reason[AbandonReason.INTERRUPTED]),
                              len(by_reason[AbandonReason.REJECTED]), left_open)

    result = await db.transaction(work)
    if result.closed:
        log.warning("closed %d calls a previous run left open: %d interrupted, %d rejected",
                    result.closed, result.interrupted, result.rejected)
    if result.left_open:
        log.info("left %d open calls younger than %s: another daemon on this database may own "
                 "them", result.left_open, SHARED_HORIZON)
    return result


async def close_interrupted(db: Database, call_ids: Collection[uuid.UUID], now: datetime,
                            source: str = EVENT_SOURCE) -> int:
    """Close these calls as `interrupted` (those still open); returns how many were."""

    async def work(conn: AsyncConnection) -> int:
        rows = (await conn.execute(select(calls.c.id).where(
            calls.c.id.in_(list(call_ids)), calls.c.status.in_(OPEN_STATUSES)))).scalars().all()
        await _close(conn, list(rows), AbandonReason.INTERRUPTED, now, source)
        return len(rows)

    return await db.transaction(work) if call_ids else 0


async def _close(conn: AsyncConnection, ids: list[uuid.UUID], reason: AbandonReason,
                 now: datetime, source: str = EVENT_SOURCE) -> None:
    if not ids:
        return
    await apply_records(conn, [
        CallStatusChanged(call_id, CallStatus.FAILED, now, source=source,
                          detail={"reason": reason.value})
        for call_id in sorted(ids)  # one lock order across writers
    ])
    await conn.execute(update(calls).where(calls.c.id.in_(ids), calls.c.error_code.is_(None))
                       .values(error_code=reason.value))
    await conn.execute(update(calls).where(calls.c.id.in_(ids), calls.c.outcome.is_(None))
                       .values(outcome=_OUTCOME[reason].value))
