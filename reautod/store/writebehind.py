"""Write-behind: the call pipeline submits records without waiting; one task writes them in batches.

- `submit` never blocks and never awaits: a full queue refuses the record (counted, logged).
- One background task owned by this object takes everything queued (up to `batch_size`) and
  commits it in one transaction, in submission order.
- If the database is unreachable (after the Database's bounded retries), the batch and every
  later one go to the local spool in order; every `retry_interval_s` the spool is replayed in
  order, and direct writes resume only once it is empty. Records are idempotent, so a replay
  after an unacknowledged commit duplicates nothing.
- A record the database rejects (a constraint, bad data) is written to the dead-letter file and
  logged, without holding up the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import StoreError, UnavailableError
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.records import Record
from reautod.store.spool import Spool

log = logging.getLogger(__name__)

CommitCallback = Callable[[Sequence[Record]], None]


def _work(records: Sequence[Record]) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def work(conn: AsyncConnection) -> None:
        await apply_records(conn, records)

    return work


@dataclass(frozen=True)
class WriteBehindStats:
    """Counts since start: `committed` by direct writes, `replayed` from the spool."""

    queued: int
    submitted: int
    committed: int
    spooled: int
    replayed: int
    dropped: int
    dead_lettered: int
    spooling: bool
    spool_bytes: int
    last_error: str | None


class WriteBehind:
    """Bounded, batching, spooling writer; `start()` it, `submit()` records, `stop()` drains."""

    def __init__(
        self,
        db: Database,
        spool_dir: Path,
        *,
        queue_size: int,
        batch_size: int = 500,
        retry_interval_s: float = 1.0,
        on_commit: CommitCallback | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or retry_interval_s <= 0:
            raise ValueError("queue_size and batch_size must be >= 1, retry_interval_s > 0")
        self._db = db
        self._spool = Spool(spool_dir)
        self._limit = queue_size
        self._batch_size = batch_size
        self._retry_interval_s = retry_interval_s
        self._on_commit = on_commit
        # Unbounded underneath; the bound is enforced in submit() so stop() can always wake it.
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()
        self._submitted = 0
        self._settled = 0  # of this process's records: committed or dead-lettered, in order
        self._spooled_pending = 0  # this process's records now in the spool
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
            submitted=self._submitted,
            committed=self._committed,
            spooled=self._spooled,
            replayed=self._replayed,
            dropped=self._dropped,
            dead_lettered=self._dead,
            spooling=self._spooling,
            spool_bytes=self._spool.size(),
            last_error=self._last_error,
        )

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record submitted so far is in the database (or dead-lettered)."""
        target = self._submitted

        async def _wait() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self._settled >= target)

        await asyncio.wait_for(_wait(), timeout)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task; a spool left by a previous run is replayed first, in order."""
        if self._task is not None:
            return
        if await asyncio.to_thread(self._spool.size):
            log.warning("found %s from a previous run: replaying it", self._spool.path)
            self._spooling = True
        self._task = asyncio.create_task(self._run(), name="store-write-behind")

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
        while True:
            batch, stopping = await self._next_batch(stopping)
            if self._spooling:
                await self._to_spool(batch)
                due = time.monotonic() - self._last_attempt >= self._retry_interval_s
                if due or stopping:
                    await self._replay()
            elif batch:
                await self._write(batch)
            if stopping and self._queue.empty():
                return

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

    async def _write(self, batch: list[Record]) -> None:
        try:
            await self._db.transaction(_work(batch))
        except UnavailableError as err:
            self._enter_spooling(err)
            await self._to_spool(batch)
            return
        except StoreError:
            await self._write_singly(batch)
            return
        except asyncio.CancelledError:
            # Shutdown ran out of time mid-write: keep the batch (a replay is idempotent).
            self._spool.append(batch)
            raise
        await self._settle(batch, committed=True)

    async def _write_singly(self, batch: list[Record]) -> None:
        for i, record in enumerate(batch):
            try:
                await self._db.transaction(_work([record]))
            except UnavailableError as err:
                self._enter_spooling(err)
                await self._to_spool(batch[i:])
                return
            except StoreError as err:
                await self._dead_letter(record, err)
                await self._settle([record], committed=False)
                continue
            await self._settle([record], committed=True)

    def _enter_spooling(self, err: Exception) -> None:
        self._last_error = str(err)
        self._last_attempt = time.monotonic()
        if not self._spooling:
            log.error("database unreachable, spooling writes to %s: %s", self._spool.path, err)
        self._spooling = True

    async def _to_spool(self, batch: list[Record]) -> None:
        if not batch:
            return
        await asyncio.to_thread(self._spool.append, batch)
        self._spooled += len(batch)
        self._spooled_pending += len(batch)

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
                await self._db.transaction(_work(records), attempts=0)
            except UnavailableError as err:
                self._last_error = str(err)
                return
            except StoreError:
                for record in records:
                    try:
                        await self._db.transaction(_work([record]), attempts=0)
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
            await self._to_spool(self._strip_stop(self._take_nowait(self._queue.qsize()), False)[0])
        await asyncio.to_thread(self._spool.clear)
        log.warning("database is back: replayed the spool (%d records so far)", self._replayed)
        self._replay_offset = 0
        self._spooling = False
        self._last_error = None
        settled, self._spooled_pending = self._spooled_pending, 0
        async with self._progress:
            self._settled += settled
            self._progress.notify_all()

    async def _dead_letter(self, record: Record, err: StoreError) -> None:
        log.error("database rejected a %s record; kept in %s: %s", record.kind, self._spool.dead_path, err)
        await asyncio.to_thread(self._spool.dead_letter, record, err.message)
        self._dead += 1

    async def _settle(self, records: list[Record], *, committed: bool) -> None:
        if committed:
            self._committed += len(records)
            if self._on_commit is not None:
                self._on_commit(records)
        async with self._progress:
            self._settled += len(records)
            self._progress.notify_all()
