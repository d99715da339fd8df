"""Calls a previous process left open are closed at start-up, with their reason."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from reautod.errors import ValidationError
from reautod.store.abandoned import AbandonedCalls, close_abandoned_calls
from reautod.store.database import Database
from reautod.store.enums import CallDirection, CallOutcome, CallStatus
from reautod.store.records import CallEnded, CallOutcomeDecided, CallStarted, CallStatusChanged
from reautod.store.repositories.calls import CallRepository
from tests.store.conftest import TEST_DB_SETTINGS

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


async def _call(db: Database, status: CallStatus, direction: CallDirection, *,
                at: datetime, answered: bool = False) -> uuid.UUID:
    call_id = uuid.uuid4()
    records: list[Any] = [CallStarted(call_id, at, direction=direction, status=status)]
    if answered:
        records.append(CallStatusChanged(call_id, CallStatus.IN_PROGRESS, at, source="twilio"))
    await CallRepository(db).write(records)
    return call_id


async def _rows(db: Database) -> dict[uuid.UUID, tuple[str, str | None, str | None]]:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, status, error_code, outcome FROM calls"))).all()
    return {uuid.UUID(str(r[0])): (r[1], r[2], r[3]) for r in rows}


async def _open_calls(db: Database, at: datetime) -> dict[str, uuid.UUID]:
    return {
        "live": await _call(db, CallStatus.IN_PROGRESS, CallDirection.OUTBOUND, at=at),
        "placing": await _call(db, CallStatus.INITIATED, CallDirection.OUTBOUND, at=at),
        "refused": await _call(db, CallStatus.RINGING, CallDirection.INBOUND, at=at),
        "inbound_live": await _call(db, CallStatus.IN_PROGRESS, CallDirection.INBOUND, at=at),
    }


async def test_open_calls_are_closed_with_their_reason(db: Database) -> None:
    old = NOW - timedelta(hours=5)  # past the shared-database horizon: closed on both backends
    ids = await _open_calls(db, old)
    done = await _call(db, CallStatus.RINGING, CallDirection.OUTBOUND, at=old)
    await CallRepository(db).write([CallEnded(done, old + timedelta(minutes=1),
                                              status=CallStatus.COMPLETED)])
    decided = await _call(db, CallStatus.IN_PROGRESS, CallDirection.OUTBOUND, at=old)
    await CallRepository(db).write([CallOutcomeDecided(decided, CallOutcome.BOOKED, "booked", old)])

    result = await close_abandoned_calls(db, NOW)

    assert result == AbandonedCalls(interrupted=4, rejected=1, left_open=0)
    rows = await _rows(db)
    assert rows[ids["live"]] == ("failed", "interrupted", "unknown")
    assert rows[ids["placing"]] == ("failed", "interrupted", "unknown")
    assert rows[ids["inbound_live"]] == ("failed", "interrupted", "unknown")
    assert rows[ids["refused"]] == ("failed", "rejected", "failed")
    assert rows[decided] == ("failed", "interrupted", "booked")  # the conversation's outcome stays
    assert rows[done][0] == "completed"  # a finished call is not touched
    async with db.engine.connect() as conn:
        events = (await conn.execute(text(
            "SELECT call_id, status, source FROM call_events WHERE source = 'startup'"))).all()
    assert {(uuid.UUID(str(e[0])), e[1]) for e in events} == \
        {(i, "failed") for i in (*ids.values(), decided)}
    # a second start finds nothing left to close
    assert await close_abandoned_calls(db, NOW) == AbandonedCalls(0, 0, 0)


async def test_an_answered_inbound_call_is_interrupted_not_rejected(db: Database) -> None:
    call = await _call(db, CallStatus.RINGING, CallDirection.INBOUND, at=NOW - timedelta(hours=5),
                       answered=True)
    assert (await close_abandoned_calls(db, NOW)).interrupted == 1
    assert (await _rows(db))[call][1] == "interrupted"


async def test_young_open_calls_on_a_shared_database_are_left_to_their_daemon(
    db: Database,
) -> None:
    ids = await _open_calls(db, NOW - timedelta(minutes=3))
    result = await close_abandoned_calls(db, NOW)
    rows = await _rows(db)
    if db.backend == "sqlite":  # one daemon per file: every open row is this daemon's
        assert result == AbandonedCalls(interrupted=3, rejected=1, left_open=0)
        assert {rows[i][0] for i in ids.values()} == {"failed"}
    else:  # another daemon on this Postgres may be in these calls right now
        assert result == AbandonedCalls(interrupted=0, rejected=0, left_open=4)
        assert rows[ids["live"]][0] == "in_progress"
        assert rows[ids["refused"]][0] == "ringing"


async def test_naive_time_is_refused(db: Database) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        await close_abandoned_calls(db, datetime(2026, 12, 6, 9, 0))


async def _seed(db_path: Path) -> dict[str, uuid.UUID]:
    db = Database(f"sqlite+aiosqlite:///{db_path}", TEST_DB_SETTINGS)
    await db.open()
    try:
        await db.upgrade("head")
        return await _open_calls(db, datetime.now(UTC) - timedelta(minutes=1))
    finally:
        await db.close()


async def _read(db_path: Path) -> dict[uuid.UUID, tuple[str, str | None, str | None]]:
    db = Database(f"sqlite+aiosqlite:///{db_path}", TEST_DB_SETTINGS)
    await db.open()
    try:
        return await _rows(db)
    finally:
        await db.close()


def test_the_daemon_closes_calls_a_crashed_run_left_open(daemon_factory: Any,
                                                         tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    ids = asyncio.run(_seed(state / "reautod.db"))
    d = daemon_factory(f'state_dir = "{state}"\n[models]\ndir = "{tmp_path / "no-models"}"\n'
                       "[http]\nport = 0\n[metrics]\nport = 0\n")
    d.start()
    d.wait_ready()
    d.stop()
    rows = asyncio.run(_read(state / "reautod.db"))
    assert {name: rows[i][:2] for name, i in ids.items()} == {
        "live": ("failed", "interrupted"), "placing": ("failed", "interrupted"),
        "refused": ("failed", "rejected"), "inbound_live": ("failed", "interrupted")}
    assert "closed 4 calls a previous run left open: 3 interrupted, 1 rejected" in d.log()
