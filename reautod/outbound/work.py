"""Background work after a webhook or a call event has been answered: owned, guarded, awaited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from reautod.errors import ReautodError

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 5.0


class BackgroundWork:
    """Tasks started by webhooks and call events (one set for outbound: `settle` waits for all)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(coro: Awaitable[None], what: str) -> None:
        try:
            await coro
        except ReautodError as err:
            log.warning("%s failed: %s (%s)", what, err.message, err.code)
        except Exception:  # background work after a webhook answered: nobody else would see it
            log.exception("%s failed", what)

    async def settle(self) -> None:
        """Wait until the work handed over so far (and what it handed on) is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Let the work already handed over finish (bounded), then cancel what is left."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
