"""The ledger's front door: rows from the meters go to the write-behind queue and the budgets.

`submit` never blocks or awaits (it is called from the call's path): each row is handed to the
write-behind queue (the true ledger, committed in batches, spooled when the database is down) and
queued for the budget guard, whose worker task counts it against every budget it falls under.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from reautod.cost.budgets import BudgetGuard
from reautod.errors import ReautodError
from reautod.store.records import CostRecorded, Record

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    def submit(self, record: Record) -> bool: ...


class CostMetrics(Protocol):
    def cost_spent(self, micros: int) -> None: ...

    def cost_by_service(self, service: str, micros: int) -> None: ...


class CostLedger:
    """See the module docstring; `start()` before use, `stop()` drains what is queued."""

    def __init__(self, sink: RecordSink, guard: BudgetGuard | None = None,
                 metrics: CostMetrics | None = None, *, queue_size: int = 10_000) -> None:
        self.sink = sink
        self.guard = guard
        self.metrics = metrics
        self._queue: asyncio.Queue[Sequence[CostRecorded]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self.refused = 0  # rows the write-behind queue refused (full)
        self.uncounted = 0  # rows the budget worker could not count (queue full, failure)

    def submit(self, rows: Sequence[CostRecorded]) -> None:
        if not rows:
            return
        for row in rows:
            if not self.sink.submit(row):
                self.refused += 1
            if self.metrics is not None and row.amount_micros:
                self.metrics.cost_spent(row.amount_micros)
                self.metrics.cost_by_service(row.service.value, row.amount_micros)
        if self.guard is not None:
            try:
                self._queue.put_nowait(rows)
            except asyncio.QueueFull:
                # The counters catch up from the ledger at the next tick.
                self.uncounted += len(rows)
                log.warning("budget queue full: %d cost rows counted at the next tick", len(rows))

    async def start(self) -> None:
        if self.guard is not None and self._task is None:
            self._task = asyncio.create_task(self._run(self.guard), name="cost-ledger")

    async def stop(self) -> None:
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self, guard: BudgetGuard) -> None:
        while True:
            rows = await self._queue.get()
            try:
                await guard.record(rows)
            except ReautodError as err:
                self.uncounted += len(rows)
                log.warning("budget counters missed %d cost rows: %s", len(rows), err.message)
            finally:
                self._queue.task_done()
