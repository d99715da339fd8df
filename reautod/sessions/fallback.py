"""Redis sessions that survive Redis: every write also lands in an in-process copy, and Redis is
reached through its circuit (`Resilience`, service `redis`).

While Redis is down (or its circuit open) calls go on: reads and writes use the in-process copy
and the call ids touched meanwhile are remembered; the first successful Redis operation after
that writes them back (their snapshot, or their deletion), so Redis never keeps a call that
ended during the outage nor misses one that started.
"""

from __future__ import annotations

import logging
from typing import Any

from reautod.errors import UnavailableError
from reautod.resilience.service import Resilience
from reautod.sessions.store import MemorySessionStore, SessionStore

log = logging.getLogger(__name__)


class FallbackSessionStore:
    """`SessionStore` over a remote store (Redis) with an in-process fallback."""

    def __init__(self, remote: SessionStore, resilience: Resilience) -> None:
        self.backend = remote.backend
        self._remote = remote
        self._local = MemorySessionStore()
        self._resilience = resilience
        self._unsynced: set[str] = set()  # call ids Redis has not seen the latest of

    @property
    def degraded(self) -> bool:
        """True while some session lives only in this process."""
        return bool(self._unsynced)

    async def _remote_call(self, op: Any) -> Any:
        return await self._resilience.call("redis", op)

    async def _sync(self) -> None:
        """Write back what changed while Redis was away (after one operation succeeded)."""
        for call_id in sorted(self._unsynced):
            snapshot = await self._local.get(call_id)
            if snapshot is None:
                await self._remote_call(lambda c=call_id: self._remote.delete(c))
            else:
                await self._remote_call(lambda c=call_id, s=snapshot: self._remote.put(c, s))
            self._unsynced.discard(call_id)
        log.info("session store: redis is back, in-process sessions written back")

    async def _write(self, call_id: str, op: Any) -> None:
        try:
            await self._remote_call(op)
            if self._unsynced:
                await self._sync()
        except UnavailableError as err:
            if not self._unsynced:
                log.warning("session store: %s; keeping sessions in-process", err.message)
            self._unsynced.add(call_id)

    async def put(self, call_id: str, snapshot: dict[str, Any]) -> None:
        await self._local.put(call_id, snapshot)
        await self._write(call_id, lambda: self._remote.put(call_id, snapshot))

    async def delete(self, call_id: str) -> None:
        await self._local.delete(call_id)
        await self._write(call_id, lambda: self._remote.delete(call_id))

    async def get(self, call_id: str) -> dict[str, Any] | None:
        if call_id in self._unsynced:
            return await self._local.get(call_id)
        try:
            result: dict[str, Any] | None = await self._remote_call(
                lambda: self._remote.get(call_id))
            return result
        except UnavailableError:
            return await self._local.get(call_id)

    async def all(self) -> dict[str, dict[str, Any]]:
        try:
            remote: dict[str, dict[str, Any]] = await self._remote_call(self._remote.all)
        except UnavailableError:
            return await self._local.all()
        local = await self._local.all()
        for call_id in self._unsynced:  # newer here than in Redis
            remote.pop(call_id, None)
            if call_id in local:
                remote[call_id] = local[call_id]
        return remote

    async def ping(self) -> None:
        """Reaches Redis itself (health shows the real state); a success writes back."""
        await self._remote_call(self._remote.ping)
        if self._unsynced:
            await self._sync()

    async def close(self) -> None:
        await self._remote.close()
        await self._local.close()
