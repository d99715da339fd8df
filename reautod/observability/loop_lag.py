"""Event-loop lag, measured continuously: how late the loop wakes a task that asked to sleep.

A call's audio is paced by the loop; when something blocks it (sync I/O, inference on the loop),
every call stutters at once. The monitor sleeps `interval_s`, compares the scheduled wake time with
the actual one, and sets the gauge to the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

logger = logging.getLogger(__name__)


class _Settable(Protocol):
    def set(self, value: float) -> None: ...


class LoopLagMonitor:
    """Owns one task that measures lag into `gauge` every `interval_s`; `start()` / `await stop()`."""

    def __init__(
        self,
        gauge: _Settable,
        *,
        interval_s: float = 0.25,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._gauge = gauge
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.last_lag_s = 0.0
        self.max_lag_s = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        while True:
            scheduled = clock() + self.interval_s
            await self._sleep(self.interval_s)
            self.record(clock() - scheduled)

    def record(self, lag_s: float) -> None:
        # The loop may wake a hair early by clock resolution: that is no lag.
        lag = max(0.0, lag_s)
        self.last_lag_s = lag
        self.max_lag_s = max(self.max_lag_s, lag)
        self._gauge.set(lag)
        if lag > 0.5:
            logger.warning("event loop was blocked for %.0f ms", lag * 1000)
