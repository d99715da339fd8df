"""The write-behind's write-ahead journal: a batch is on disk before it is written, and a journal
a killed process left is replayed at the next start (merged with its spool, in order)."""

from __future__ import annotations

import uuid
from pathlib import Path

from reautod.store.database import Database
from reautod.store.enums import CallStatus
from reautod.store.records import CallEnded, Record
from reautod.store.repositories import CallRepository
from reautod.store.spool import Spool
from reautod.store.writebehind import WriteBehind
from tests.fixtures.fault_proxy import FaultProxy
from tests.store.factories import T0, call_started, turn
from tests.store.test_writebehind import proxied, turn_seqs, wait_until

__all__ = ["proxied"]  # the fixture, shared with test_writebehind


async def test_a_batch_is_journaled_before_the_database_has_it(
    proxied: tuple[Database, Database, FaultProxy], tmp_path: Path
) -> None:
    direct, via_proxy, proxy = proxied
    wb = WriteBehind(via_proxy, tmp_path / "spool", queue_size=1000, retry_interval_s=0.2)
    await wb.start()
    journal = Spool(tmp_path / "spool", "journal.jsonl")
    proxy.stall()  # the database hangs: nothing can commit
    start = call_started()
    records: list[Record] = [start, *(turn(start.call_id, i) for i in range(10))]
    for r in records:
        wb.submit(r)
    await wait_until(lambda: len(journal.read_all()) == len(records), timeout=10)
    assert await turn_seqs(direct, start.call_id) == []
    proxy.heal()
    await wb.flush(timeout=60)
    await wb.stop(timeout=30)
    assert await turn_seqs(direct, start.call_id) == list(range(10))
    assert journal.size() == 0  # all settled: a clean stop leaves no journal


async def test_a_killed_runs_journal_is_replayed_at_start(db: Database, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    start = call_started()
    older = call_started()  # spooled by a run before the killed one
    journaled: list[Record] = [start, *(turn(start.call_id, i) for i in range(6)),
                               CallEnded(start.call_id, T0, CallStatus.COMPLETED, duration_ms=9)]
    # The killed run had spooled part of its journal (the database went away mid-call).
    Spool(spool_dir).append([older, turn(older.call_id, 0), *journaled[3:5]])
    Spool(spool_dir, "journal.jsonl").append(journaled)

    wb = WriteBehind(db, spool_dir, queue_size=100, retry_interval_s=0.1)
    await wb.start()
    assert await wb.caught_up(timeout=30)
    await wb.stop()
    assert wb.stats().replayed == 2 + len(journaled)  # nothing twice
    assert await turn_seqs(db, start.call_id) == list(range(6))
    assert await turn_seqs(db, older.call_id) == [0]
    assert (await CallRepository(db).get(start.call_id)).status == "completed"
    assert not (spool_dir / "journal.jsonl").exists()
    assert Spool(spool_dir).size() == 0


async def test_the_journal_is_truncated_once_settled(db: Database, tmp_path: Path) -> None:
    wb = WriteBehind(db, tmp_path / "spool", queue_size=100)
    await wb.start()
    journal = Spool(tmp_path / "spool", "journal.jsonl")
    first = call_started(call_id=uuid.uuid4())
    wb.submit(first)
    await wb.flush(timeout=30)
    second = call_started()
    wb.submit(second)
    await wb.flush(timeout=30)
    # the second batch found the first settled: only it is left
    await wait_until(lambda: [r.call_id for r in journal.read_all()]  # type: ignore[attr-defined]
                     == [second.call_id], timeout=10)
    await wb.stop()
    assert journal.size() == 0
