"""Write-behind: batching, bounded queue, dead letters, and spool-and-replay when the database
dies mid-call (no turn lost, none duplicated)."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from reautod.errors import StoreError
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings, ServicePolicy
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import CallStatus
from reautod.store.records import CallEnded, Record
from reautod.store.repositories import CallRepository
from reautod.store.writebehind import RELAXED_KINDS, WriteBehind
from tests.fixtures.fault_proxy import FaultProxy
from tests.store.conftest import TEST_DB_SETTINGS
from tests.store.factories import T0, call_started, turn


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async def poll() -> None:
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def turn_seqs(db: Database, call_id: uuid.UUID) -> list[int]:
    return [t.seq for t in await CallRepository(db).turns(call_id)]


async def test_batches_commit_in_order(db: Database, tmp_path: Path) -> None:
    committed: list[Record] = []
    wb = WriteBehind(
        db, tmp_path / "spool", queue_size=5000, batch_size=64, on_commit=committed.extend
    )
    await wb.start()
    start = call_started()
    records: list[Record] = [start, *(turn(start.call_id, i) for i in range(500))]
    records.append(CallEnded(start.call_id, T0, CallStatus.COMPLETED, duration_ms=1000))
    for r in records:
        assert wb.submit(r)
    await wb.flush(timeout=60)
    await wb.stop()
    # The call row first (written alone); the rest in batches that may commit out of order.
    assert committed[0] == start
    assert sorted(map(id, committed)) == sorted(map(id, records))
    assert await turn_seqs(db, start.call_id) == list(range(500))
    stats = wb.stats()
    assert (stats.committed, stats.spooled, stats.dropped, stats.spooling) == (502, 0, 0, False)
    assert (await CallRepository(db).get(start.call_id)).status == "completed"


async def test_full_queue_refuses_and_counts_without_blocking(db: Database, tmp_path: Path) -> None:
    wb = WriteBehind(db, tmp_path / "spool", queue_size=5)
    await wb.start()
    start = call_started()
    records: list[Record] = [start, *(turn(start.call_id, i) for i in range(9))]
    accepted = [wb.submit(r) for r in records]
    assert accepted == [True] * 5 + [False] * 5  # no await in between: the writer never ran
    await wb.flush(timeout=30)
    await wb.stop()
    assert wb.stats().dropped == 5
    assert await turn_seqs(db, start.call_id) == [0, 1, 2, 3]


async def test_rejected_record_is_dead_lettered_not_blocking(db: Database, tmp_path: Path) -> None:
    wb = WriteBehind(db, tmp_path / "spool", queue_size=100)
    await wb.start()
    start = call_started()
    orphan = turn(uuid.uuid4(), 0)  # its call does not exist: a foreign-key violation
    batch: list[Record] = [start, turn(start.call_id, 0), orphan, turn(start.call_id, 1)]
    for r in batch:
        wb.submit(r)
    await wb.flush(timeout=30)
    await wb.stop()
    assert await turn_seqs(db, start.call_id) == [0, 1]
    assert wb.stats().dead_lettered == 1
    dead = [
        json.loads(line) for line in (tmp_path / "spool" / "dead.jsonl").read_text().splitlines()
    ]
    assert [d["record"]["data"]["turn_id"] for d in dead] == [str(orphan.turn_id)]


async def test_submit_requires_a_running_writer(db: Database, tmp_path: Path) -> None:
    wb = WriteBehind(db, tmp_path / "spool", queue_size=10)
    with pytest.raises(StoreError):
        wb.submit(call_started())


@pytest.fixture
async def proxied(
    fresh_database_url: str,
) -> AsyncIterator[tuple[Database, Database, FaultProxy]]:
    """(direct db at head, db through a fault proxy and a quick circuit, the proxy)."""
    direct = Database(fresh_database_url, TEST_DB_SETTINGS)
    await direct.open()
    await direct.upgrade("head")
    url = make_url(fresh_database_url)
    quick = Resilience(ResilienceSettings(database=ServicePolicy(failures=3, recovery_s=0.3)))
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        via_proxy = Database(url.set(port=proxy.port).render_as_string(hide_password=False),
                             TEST_DB_SETTINGS, resilience=quick)
        await via_proxy.open()
        yield direct, via_proxy, proxy
        await via_proxy.close()
    await direct.close()


async def test_database_dies_mid_call_then_returns(
    proxied: tuple[Database, Database, FaultProxy], tmp_path: Path
) -> None:
    direct, via_proxy, proxy = proxied
    wb = WriteBehind(
        via_proxy, tmp_path / "spool", queue_size=10_000, batch_size=16, retry_interval_s=0.2
    )
    await wb.start()
    start = call_started()
    wb.submit(start)
    for seq in range(30):
        wb.submit(turn(start.call_id, seq))
        await asyncio.sleep(0.002)
    await wb.flush(timeout=30)

    proxy.reset()  # connections reset mid-stream, new ones too
    for seq in range(30, 70):
        wb.submit(turn(start.call_id, seq))
        await asyncio.sleep(0.002)
    await wait_until(lambda: wb.stats().spooling and wb.stats().queued == 0)
    assert (tmp_path / "spool" / "writes.jsonl").stat().st_size > 0
    assert await turn_seqs(direct, start.call_id) == list(range(30))
    assert via_proxy.resilience.state("database") != "closed"  # replays probe, not hammer

    proxy.heal()
    for seq in range(70, 100):
        wb.submit(turn(start.call_id, seq))
    await wb.flush(timeout=60)
    await wb.stop()

    assert await turn_seqs(direct, start.call_id) == list(range(100))  # no loss, no duplicate
    assert via_proxy.resilience.state("database") == "closed"
    stats = wb.stats()
    assert stats.spooled >= 40 and stats.replayed >= 40 and not stats.spooling
    assert not (tmp_path / "spool" / "writes.jsonl").exists()


async def test_backend_terminated_while_writing_loses_nothing(
    proxied: tuple[Database, Database, FaultProxy], postgres_admin_url: str, tmp_path: Path
) -> None:
    db = proxied[0]
    name = db.url.database
    wb = WriteBehind(db, tmp_path / "spool", queue_size=10_000, batch_size=8, retry_interval_s=0.2)
    await wb.start()
    start = call_started()
    wb.submit(start)
    admin_url = postgres_admin_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        killed = 0
        for seq in range(200):
            wb.submit(turn(start.call_id, seq))
            if seq % 40 == 20:
                await asyncio.sleep(0.01)
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
                killed += len(rows)
            await asyncio.sleep(0.001)
    await wb.flush(timeout=60)
    await wb.stop()
    assert killed > 0
    assert await turn_seqs(db, start.call_id) == list(range(200))


async def test_spool_left_by_a_stopped_daemon_is_replayed_at_start(
    proxied: tuple[Database, Database, FaultProxy], tmp_path: Path
) -> None:
    direct, via_proxy, proxy = proxied
    spool_dir = tmp_path / "spool"
    first = WriteBehind(via_proxy, spool_dir, queue_size=1000, retry_interval_s=0.2)
    await first.start()
    proxy.cut()
    start = call_started()
    spooled: list[Record] = [start, *(turn(start.call_id, i) for i in range(25))]
    for r in spooled:
        first.submit(r)
    await first.stop(timeout=30)  # the database is down: everything goes to the spool
    assert first.stats().spooled == 26
    assert await turn_seqs(direct, start.call_id) == []

    second = WriteBehind(direct, spool_dir, queue_size=1000, retry_interval_s=0.2)
    await second.start()
    assert await second.caught_up(timeout=30)
    assert await turn_seqs(direct, start.call_id) == list(range(25))  # in before it returned
    await second.stop()
    assert second.stats().replayed == 26

    async def count(conn: object) -> int:
        return int((await conn.execute(select(func.count()).select_from(m.Call))).scalar_one())  # type: ignore[attr-defined]

    assert await direct.read(count) == 1


async def test_relaxed_commits_write_the_same_rows(db: Database, tmp_path: Path) -> None:
    wb = WriteBehind(db, tmp_path / "spool", queue_size=1000, relaxed_kinds=RELAXED_KINDS)
    await wb.start()
    start = call_started()
    records: list[Record] = [start, *(turn(start.call_id, i) for i in range(50))]
    records.append(CallEnded(start.call_id, T0, CallStatus.COMPLETED))  # durable kind
    for r in records:
        wb.submit(r)
    await wb.flush(timeout=30)
    await wb.stop()
    assert await turn_seqs(db, start.call_id) == list(range(50))
    assert (await CallRepository(db).get(start.call_id)).status == "completed"
