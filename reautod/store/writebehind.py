"""Write-behind: the call pipeline submits records without waiting; this object writes them.

- `submit` never blocks and never awaits: a full queue refuses the record (counted, logged).
- A writer task owned by this object takes everything queued (up to `batch_size`) as one batch
  and commits it in one transaction. Up to `max_in_flight` batches are written at once, which
  hides the commit latency; records whose order matters (a call's creation before its turns,
  score history, recording rows) are written alone, after everything before them and before
  anything after them. The rest (turns, status events, call end, transitions, costs) are
  independent of each other's order by construction (see reautod.store.apply).
- If the database is unreachable (after the Database's bounded retries), the batch and every
  later one go to the local spool; every `retry_interval_s` the spool is replayed in order and
  direct writes resume once it is empty. Records are idempotent, so a replay after an
  unacknowledged commit duplicates nothing.
- Write-ahead: every batch the writer takes is also appended (and fsynced) to the journal
  (`spool/journal.jsonl`) by a task of its own, in the order taken, while the batch is being
  written: a record is safe once either is done, so a `kill -9` loses at most what was still in
  the in-memory queue or in neither yet (milliseconds), and the journal adds no wait to a write
  (under load one fsync covers every batch taken meanwhile). The journal is truncated whenever
  every record in it is settled; one left by a crash is merged into the spool at start (records
  the spool already holds are not repeated) and replayed like it. Replaying a committed record
  changes nothing.
- A record the database rejects (a constraint, bad data) goes to the dead-letter file, logged,
  without holding up the rest.
- Commit latency: a durable Postgres commit waits for a WAL flush. Commits are durable by
  default. `relaxed_kinds=RELAXED_KINDS` lets batches holding only turns, transitions and status
  events commit with `synchronous_commit = off` (the commit returns before the flush; a Postgres
  *server* crash may then lose the last fraction of a second of them, never corrupting
  anything); call creation and end, scores, recordings and costs always commit durably.
  bench/bench_store_writes.py measures both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import StoreError, UnavailableError
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.records import (
    AgentTransitionRecord,
    CallStarted,
    CallStatusChanged,
    Record,
    RecordingFinalized,
    ScoreUpdate,
    TurnSpoken,
    to_wire,
)
from reautod.store.spool import Spool

log = logging.getLogger(__name__)

CommitCallback = Callable[[Sequence[Record]], None]

# Kinds written with nothing else in flight (see the module docstring).
ORDERED_KINDS = frozenset({CallStarted.kind, ScoreUpdate.kind, RecordingFinalized.kind})


# Kinds whose batches may opt in to commits without waiting for the WAL flush (module docstring).
RELAXED_KINDS = frozenset({TurnSpoken.kind, AgentTransitionRecord.kind, CallStatusChanged.kind})


def _work(
    records: Sequence[Record], relaxed: bool = False
) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def work(conn: AsyncConnection) -> None:
        if relaxed and conn.dialect.name == "postgresql":
            await conn.execute(_RELAXED_COMMIT)
        await apply_records(conn, records)

    return work


_RELAXED_COMMIT = text("SET LOCAL synchronous_commit = off")


def _key(record: Record) -> str:
    return json.dumps(to_wire(record), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class WriteBehindStats:
    """Counts since start: `committed` by direct writes, `replayed` from the spool."""

    queued: int
    in_flight: int
    submitted: int
    committed: int
    spooled: int
    replayed: int
    dropped: int
    dead_lettered: int
    spooling: bool
    last_error: str | None


@dataclass(frozen=True)
class _Batch:
    records: list[Record]
    first: int  # sequence number of records[0] among this process's submissions

    @property
    def end(self) -> int:
        return self.first + len(self.records)


class WriteBehind:
    """Bounded, batching, spooling writer; `start()` it, `submit()` records, `stop()` drains."""

    def __init__(
        self,
        db: Database,
        spool_dir: Path,
        *,
        queue_size: int,
        batch_size: int = 500,
        max_in_flight: int = 3,
        retry_interval_s: float = 1.0,
        relaxed_kinds: frozenset[str] = frozenset(),
        on_commit: CommitCallback | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or max_in_flight < 1 or retry_interval_s <= 0:
            raise ValueError("queue_size, batch_size, max_in_flight >= 1; retry_interval_s > 0")
        self._db = db
        self._spool = Spool(spool_dir)
        self._journal = Spool(spool_dir, "journal.jsonl")
        self._journal_end = 0  # sequence number after the last record the journal holds
        self._journal_queue: asyncio.Queue[tuple[list[Record], int] | None] = asyncio.Queue()
        self._journal_task: asyncio.Task[None] | None = None
        self._limit = queue_size
        self._batch_size = batch_size
        self._max_in_flight = max_in_flight
        self._retry_interval_s = retry_interval_s
        self._relaxed_kinds = relaxed_kinds
        self._on_commit = on_commit
        # Unbounded underneath; the bound is enforced in submit() so stop() can always wake it.
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._spool_lock = asyncio.Lock()
        self._progress = asyncio.Condition()
        self._submitted = 0
        self._taken = 0  # sequence number of the next record the writer takes
        # Batches finish out of order; `_watermark` = every record below it is settled.
        self._watermark = 0
        self._finished: dict[int, int] = {}  # first -> end of settled batches above the mark
        self._spooled_batches: list[_Batch] = []  # this process's, settled when replayed
        self._committed = 0
        self._spooled = 0
        self._replayed = 0
        self._dropped = 0
        self._dead = 0
        self._spooling = False
        self._replay_offset = 0
        self._last_attempt = 0.0
        self._last_error: str | None = None

    # -- the pipeline's side -------------------------------------------------------------

    def submit(self, record: Record) -> bool:
        """Queue a record; False (and counted) when the queue is full. Never blocks."""
        if self._task is None or self._task.done():
            raise StoreError("the write-behind queue is not running")
        if self._queue.qsize() >= self._limit:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.error(
                    "write-behind queue full (%d): dropped %s (%d dropped so far)",
                    self._limit, record.kind, self._dropped,
                )
            return False
        self._submitted += 1
        self._queue.put_nowait(record)
        return True

    def stats(self) -> WriteBehindStats:
        return WriteBehindStats(
            queued=self._queue.qsize(),
            in_flight=len(self._in_flight),
            submitted=self._submitted,
            committed=self._committed,
            spooled=self._spooled,
            replayed=self._replayed,
            dropped=self._dropped,
            dead_lettered=self._dead,
            spooling=self._spooling,
            last_error=self._last_error,
        )

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record submitted so far is in the database (or dead-lettered)."""
        target = self._submitted

        async def _wait() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self._watermark >= target)

        await asyncio.wait_for(_wait(), timeout)

    async def caught_up(self, timeout: float) -> bool:
        """Wait until the spool (a previous run's included) is replayed; False after `timeout`."""

        async def _wait() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: not self._spooling)

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task; a spool left by a previous run is replayed first, in order."""
        if self._task is not None:
            return
        if await asyncio.to_thread(self._journal.size):
            merged = await asyncio.to_thread(self._merge_journal)
            log.warning("found the write-ahead journal of a run that did not stop: %d records "
                        "go to the spool", merged)
        if await asyncio.to_thread(self._spool.size):
            log.warning("found %s from a previous run: replaying it", self._spool.path)
            self._spooling = True
        self._journal_task = asyncio.create_task(self._journal_loop(), name="store-journal")
        self._task = asyncio.create_task(self._run(), name="store-write-behind")

    def _merge_journal(self) -> int:
        """Move a crashed run's journal behind the spool (one file, in order; see the module
        docstring): the spool's records that the journal also holds were that run's, and the
        journal has them in their place among the rest."""
        journal = self._journal.read_all()
        if journal:
            seen = {_key(r) for r in journal}
            earlier = [r for r in self._spool.read_all() if _key(r) not in seen]
            self._spool.replace([*earlier, *journal])
        self._journal.clear()
        return len(journal)

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (to the database, or the spool if it is down), then end the task."""
        task = self._task
        if task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.error("write-behind did not drain in %.1fs: spooling the rest", timeout)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            rest = [r for r in self._take_nowait(self._queue.qsize()) if r is not None]
            if rest:
                await asyncio.to_thread(self._spool.append, rest)
                self._spooled += len(rest)
        finally:
            self._task = None

    # -- the writer task -------------------------------------------------------------------

    async def _run(self) -> None:
        stopping = False
        try:
            while True:
                records, stopping = await self._next_batch(stopping)
                if records:
                    self._journal_queue.put_nowait((records, self._taken + len(records)))
                batch = _Batch(records, self._taken)
                self._taken = batch.end
                replayed = False
                if records and not self._spooling:
                    ordered = any(r.kind in ORDERED_KINDS for r in records)
                    await self._wait_in_flight(0 if ordered else self._max_in_flight - 1)
                    if not self._spooling:  # a batch in flight may have failed meanwhile
                        if ordered:
                            await self._write(batch)
                        else:
                            task = asyncio.create_task(self._write(batch))
                            self._in_flight.add(task)
                            task.add_done_callback(self._task_done)
                        batch = _Batch([], batch.end)
                if self._spooling:
                    await self._wait_in_flight(0)
                    await self._to_spool(batch)
                    if stopping or time.monotonic() - self._last_attempt >= self._retry_interval_s:
                        await self._replay()
                        replayed = True
                if stopping and self._queue.empty():
                    await self._wait_in_flight(0)
                    if self._spooling and not replayed:
                        await self._replay()  # batches in flight failed while we drained
                    return
        finally:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            await self._stop_journal()

    async def _journal_loop(self) -> None:
        """Append each taken batch to the journal in order (see the module docstring)."""
        while True:
            item = await self._journal_queue.get()
            if item is None:
                return
            batches = [item]
            while not self._journal_queue.empty():
                more = self._journal_queue.get_nowait()
                if more is None:
                    self._journal_queue.put_nowait(None)  # after this append
                    break
                batches.append(more)
            records = [r for batch, _ in batches for r in batch]
            try:
                if self._journal_end and self._watermark >= self._journal_end:
                    await asyncio.to_thread(self._journal.clear)  # all in it is settled
                await asyncio.to_thread(self._journal.append, records)
                self._journal_end = batches[-1][1]
            except StoreError as err:  # a full disk: the records still go to the database
                log.error("write-ahead journal unavailable: %s", err.message)

    async def _stop_journal(self) -> None:
        task, self._journal_task = self._journal_task, None
        if task is None:
            return
        self._journal_queue.put_nowait(None)
        try:
            await asyncio.wait_for(task, 10.0)
        except TimeoutError:
            log.error("write-ahead journal did not finish: it is replayed at the next start")
            return
        if self._journal_end and self._watermark >= self._journal_end:
            # a clean stop: everything is in the database or the spool
            await asyncio.to_thread(self._journal.clear)
            self._journal_end = 0

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_free.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("write-behind batch failed: %s", task.exception())

    async def _wait_in_flight(self, at_most: int) -> None:
        while len(self._in_flight) > at_most:
            self._slot_free.clear()
            await self._slot_free.wait()

    async def _next_batch(self, stopping: bool) -> tuple[list[Record], bool]:
        if not stopping and self._queue.empty():
            timeout = self._retry_interval_s if self._spooling else None
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                return [], stopping
            if first is None:
                stopping = True
            else:
                batch = [first, *self._take_nowait(self._batch_size - 1)]
                return self._strip_stop(batch, stopping)
        return self._strip_stop(self._take_nowait(self._batch_size), stopping)

    def _take_nowait(self, n: int) -> list[Record | None]:
        out: list[Record | None] = []
        while len(out) < n:
            try:
                out.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out

    @staticmethod
    def _strip_stop(items: list[Record | None], stopping: bool) -> tuple[list[Record], bool]:
        records = [r for r in items if r is not None]
        return records, stopping or len(records) != len(items)

    async def _write(self, batch: _Batch) -> None:
        relaxed = all(r.kind in self._relaxed_kinds for r in batch.records)
        try:
            await self._transaction(_work(batch.records, relaxed))
        except UnavailableError as err:
            self._enter_spooling(err)
            await self._to_spool(batch)
            return
        except StoreError:
            await self._write_singly(batch)
            return
        except asyncio.CancelledError:
            # Shutdown ran out of time mid-write: keep the batch (a replay is idempotent).
            self._spool.append(batch.records)
            raise
        self._committed += len(batch.records)
        if self._on_commit is not None:
            self._on_commit(batch.records)
        await self._settle(batch)

    async def _write_singly(self, batch: _Batch) -> None:
        for i, record in enumerate(batch.records):
            try:
                await self._transaction(_work([record]))
            except UnavailableError as err:
                self._enter_spooling(err)
                await self._to_spool(_Batch(batch.records[i:], batch.first + i))
                await self._settle(_Batch(batch.records[:i], batch.first))
                return
            except StoreError as err:
                await self._dead_letter(record, err)
                continue
            self._committed += 1
            if self._on_commit is not None:
                self._on_commit([record])
        await self._settle(batch)

    async def _transaction(
        self, work: Callable[[AsyncConnection], Awaitable[None]], attempts: int | None = None
    ) -> None:
        """The Database's transaction, with any unexpected failure turned into a StoreError so
        the record is dead-lettered (kept, and logged with its traceback) instead of lost."""
        try:
            await self._db.transaction(work, attempts=attempts)
        except (StoreError, UnavailableError, asyncio.CancelledError):
            raise
        except Exception as err:
            log.exception("unexpected failure writing records")
            raise StoreError(f"unexpected failure: {err!r}") from err

    def _enter_spooling(self, err: Exception) -> None:
        self._last_error = str(err)
        self._last_attempt = time.monotonic()
        if not self._spooling:
            log.error("database unreachable, spooling writes to %s: %s", self._spool.path, err)
        self._spooling = True

    async def _to_spool(self, batch: _Batch) -> None:
        if not batch.records:
            return
        async with self._spool_lock:  # batches in flight may fail at the same time
            await asyncio.to_thread(self._spool.append, batch.records)
        self._spooled += len(batch.records)
        self._spooled_batches.append(batch)

    async def _replay(self) -> None:
        """Replay the spool in order; stay in spooling mode at the first failure."""
        self._last_attempt = time.monotonic()
        while True:
            records, offset = await asyncio.to_thread(
                self._spool.read, self._replay_offset, self._batch_size
            )
            if not records:
                if offset == self._replay_offset:
                    break
                self._replay_offset = offset  # only skipped lines in this stretch
                continue
            try:
                await self._transaction(_work(records), attempts=0)
            except UnavailableError as err:
                self._last_error = str(err)
                return
            except StoreError:
                for record in records:
                    try:
                        await self._transaction(_work([record]), attempts=0)
                    except UnavailableError as err:
                        self._last_error = str(err)
                        return  # the offset still points at this chunk: idempotent retry
                    except StoreError as err:
                        await self._dead_letter(record, err)
            self._replay_offset = offset
            self._replayed += len(records)
            if self._on_commit is not None:
                self._on_commit(records)
            # Keep the queue from filling during a long replay: move it behind the spool.
            queued = self._strip_stop(self._take_nowait(self._queue.qsize()), False)[0]
            if queued:
                batch = _Batch(queued, self._taken)
                self._taken = batch.end
                await self._to_spool(batch)
        await asyncio.to_thread(self._spool.clear)
        log.warning("database is back: replayed the spool (%d records so far)", self._replayed)
        self._replay_offset = 0
        self._spooling = False
        self._last_error = None
        replayed, self._spooled_batches = self._spooled_batches, []
        for batch in replayed:
            await self._settle(batch)
        async with self._progress:  # caught_up() waits for this, with or without batches
            self._progress.notify_all()

    async def _dead_letter(self, record: Record, err: StoreError) -> None:
        log.error(
            "database rejected a %s record; kept in %s: %s", record.kind, self._spool.dead_path, err
        )
        async with self._spool_lock:
            await asyncio.to_thread(self._spool.dead_letter, record, err.message)
        self._dead += 1

    async def _settle(self, batch: _Batch) -> None:
        """Mark a batch's records done and advance the watermark `flush` waits on."""
        if not batch.records:
            return
        async with self._progress:
            self._finished[batch.first] = batch.end
            while self._watermark in self._finished:
                self._watermark = self._finished.pop(self._watermark)
            self._progress.notify_all()
