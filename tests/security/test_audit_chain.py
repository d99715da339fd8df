"""The audit log's hash chain: verified end to end, tampering found at the exact entry, pruning
anchored, concurrent appends from two processes never fork it."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import StoreError, ValidationError
from reautod.store.database import Database
from reautod.store.repositories.audit import GENESIS, AuditRepository, chain_hash, insert_audit
from tests.store.conftest import TEST_DB_SETTINGS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO_ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def unguarded(db: Database, statement: str) -> None:
    """Run a statement with the append-only triggers out of the way, as someone with full
    database access could."""
    if db.backend == "postgres":
        sql = [
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            statement,
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only",
        ]
    else:
        sql = ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete", statement]
    async with db.engine.begin() as conn:
        for s in sql:
            await conn.execute(text(s))


async def seeded(db: Database, n: int = 6) -> tuple[AuditRepository, list[int]]:
    audit = AuditRepository(db, clock=Clock())
    ids = [
        await audit.append(f"uid:{1000 + i}", "campaign.start", target_type="campaign",
                           target_id=str(i), origin="control pid=42",
                           detail={"params": ["campaign"], "ratio": 0.5, "n": 2.0})
        for i in range(n)
    ]
    return audit, ids


async def test_an_untouched_chain_verifies(db: Database) -> None:
    audit, ids = await seeded(db)
    report = await audit.verify()
    rows = await audit.recent()
    assert report.ok and report.entries == len(ids) and report.first_bad_id is None
    assert report.head_hash == rows[0].hash
    assert rows[-1].prev_hash == GENESIS
    assert rows[0].detail == {"params": ["campaign"], "ratio": 0.5, "n": 2}
    assert [r.id for r in rows] == ids[::-1]


async def test_a_changed_entry_is_found_exactly(db: Database) -> None:
    audit, ids = await seeded(db)
    await unguarded(db, f"UPDATE audit_log SET actor = 'uid:0' WHERE id = {ids[3]}")
    report = await audit.verify()
    assert not report.ok
    assert report.first_bad_id == ids[3] and report.entries == 4
    assert "changed" in (report.problem or "")


async def test_a_removed_entry_is_found_at_the_next_one(db: Database) -> None:
    audit, ids = await seeded(db)
    await unguarded(db, f"DELETE FROM audit_log WHERE id = {ids[2]}")
    report = await audit.verify()
    assert not report.ok and report.first_bad_id == ids[3]
    assert "removed or inserted" in (report.problem or "")


async def test_the_database_refuses_edits_and_uncovered_deletes(db: Database) -> None:
    audit, ids = await seeded(db, 2)
    for statement in (
        f"UPDATE audit_log SET action = 'x' WHERE id = {ids[0]}",
        f"DELETE FROM audit_log WHERE id = {ids[0]}",
        "INSERT INTO audit_anchors (through_id, through_hash, pruned, at) "
        "VALUES (0, 'x', 0, CURRENT_TIMESTAMP)",
    ):
        async def run(conn: object, s: str = statement) -> None:
            await conn.execute(text(s))  # type: ignore[attr-defined]

        if statement.startswith("INSERT"):
            await db.transaction(run)  # anchors may be added ...
            for change in ("UPDATE audit_anchors SET through_id = 99",
                           "DELETE FROM audit_anchors"):
                with pytest.raises(StoreError, match="append-only"):  # ... never changed
                    await db.transaction(lambda c, s=change: c.execute(text(s)))  # type: ignore[misc]
        else:
            with pytest.raises(StoreError, match="append-only"):
                await db.transaction(run)
    # the forged anchor does not fit the entries after it
    assert (await audit.verify()).first_bad_id == ids[0]


async def test_pruning_keeps_one_verifiable_chain(db: Database) -> None:
    clock = Clock()
    audit = AuditRepository(db, clock=clock)
    old = [await audit.append("system", "retention.run") for _ in range(3)]
    clock.advance(days=40)
    kept = [await audit.append("uid:0", "dnc.add") for _ in range(2)]
    assert await audit.prune(T0 + timedelta(days=30)) == 3
    assert await audit.prune(T0 + timedelta(days=30)) == 0
    report = await audit.verify()
    assert report.ok and report.entries == 2 and report.starts_after == old[-1]
    assert [r.id for r in await audit.recent()] == kept[::-1]
    # the chain goes on from where it was, and past a prune of everything
    clock.advance(days=1)
    assert await audit.prune(clock.now + timedelta(seconds=1)) == 2
    assert (await audit.verify()).ok and (await audit.recent()) == []
    new = await audit.append("uid:0", "keys.rotate")
    [row] = await audit.recent()
    assert row.id == new and row.prev_hash != GENESIS and (await audit.verify()).ok
    # a tampered anchor (or a forged prune) shows at the first kept entry
    trigger = ("ALTER TABLE audit_anchors DISABLE TRIGGER audit_anchors_append_only"
               if db.backend == "postgres" else "DROP TRIGGER audit_anchors_no_update")
    async with db.engine.begin() as conn:
        await conn.execute(text(trigger))
        await conn.execute(text("UPDATE audit_anchors SET through_hash = 'f'"))
    assert (await audit.verify()).first_bad_id == new


async def test_details_must_be_plain_json(db: Database) -> None:
    audit = AuditRepository(db)
    for bad in ({"x": float("nan")}, {"x": object()}, {1: "x"}):
        with pytest.raises(ValidationError):
            await audit.append("uid:0", "x", detail=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await audit.append("", "x")


async def test_existing_entries_are_chained_by_the_migration(empty_db: Database) -> None:
    db = empty_db
    [security] = [r for r in await db.history() if r.message.startswith("security:")]
    assert security.down_revision is not None
    await db.upgrade(security.down_revision)  # the schema before the chain existed
    async with db.engine.begin() as conn:
        for i in range(3):
            await conn.execute(text(
                "INSERT INTO audit_log (at, actor, action, target_type, target_id, detail) "
                "VALUES (:at, 'twilio', 'recording.completed', 'call', :t, :d)"),
                {"at": (T0 + timedelta(minutes=i)).replace(tzinfo=None)
                 if db.backend == "sqlite" else T0 + timedelta(minutes=i),
                 "t": str(uuid.uuid4()), "d": '{"duration_s": 12}'})
    await db.upgrade("head")
    audit = AuditRepository(db)
    report = await audit.verify()
    assert report.ok and report.entries == 3
    await audit.append("uid:0", "after.upgrade")
    rows = await audit.recent()
    assert rows[0].prev_hash == rows[1].hash and (await audit.verify()).entries == 4
    assert rows[1].hash == chain_hash(rows[1].prev_hash, rows[1].content())


APPENDER = textwrap.dedent("""
    import asyncio, sys
    from reautod.store.database import Database
    from reautod.store.repositories.audit import AuditRepository
    from tests.store.conftest import TEST_DB_SETTINGS

    async def main(url, name, n):
        db = Database(url, TEST_DB_SETTINGS)
        await db.open()
        audit = AuditRepository(db)
        for i in range(n):
            await audit.append(name, "race", target_id=str(i))
        await db.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


@pytest.fixture
def appender(tmp_path: Path) -> Iterator[Path]:
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    yield script


async def test_two_processes_appending_at_once_do_not_fork_the_chain(
    db: Database, db_url: str, appender: Path
) -> None:
    n = 40
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(appender), db_url, name, str(n), cwd=REPO_ROOT,
            stderr=asyncio.subprocess.PIPE)
        for name in ("daemon-a", "daemon-b")
    ]
    for proc in procs:
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
    audit = AuditRepository(Database(db_url, TEST_DB_SETTINGS))
    await audit.db.open()
    try:
        report = await audit.verify()
        rows = await audit.recent(limit=1000)
    finally:
        await audit.db.close()
    assert report.ok and report.entries == 2 * n
    assert {r.actor for r in rows} == {"daemon-a", "daemon-b"}
    assert len({r.prev_hash for r in rows}) == 2 * n


async def test_an_entry_commits_with_the_change_it_describes(db: Database) -> None:
    audit = AuditRepository(db)
    await audit.append("uid:0", "first")

    async def failing(conn: AsyncConnection) -> None:
        await insert_audit(conn, "uid:0", "campaign.stop", target_id="x")
        raise ValidationError("the change itself was refused")

    async def done(conn: AsyncConnection) -> int:
        return await insert_audit(conn, "uid:0", "campaign.stop", target_id="y")

    with pytest.raises(ValidationError):
        await db.transaction(failing)
    await db.transaction(done)
    assert [(r.action, r.target_id) for r in await audit.recent()] == [
        ("campaign.stop", "y"), ("first", None)]
    assert (await audit.verify()).ok
