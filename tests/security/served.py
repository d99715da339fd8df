"""The security part (`SecurityPart`, as the daemon builds it) on a real ControlServer in a thread
of its own (reautoctl runs its own event loop), its methods wired the way the daemon is to wire
them: every call runs as the socket peer through `AuditTrail.run_method`, the state-changing
ones audited."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from reautod.control.server import ControlServer
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.security.keys import KeyRing, load_key_ring
from reautod.security.part import SecurityPart
from reautod.security.principal import control_peer
from reautod.security.retention import RetentionSettings
from reautod.sessions import MemorySessionStore
from reautod.store.database import Database
from tests.store.conftest import TEST_DB_SETTINGS

T = TypeVar("T")


class ServedSecurity:
    def __init__(self, db_url: str, state: Path, key_text: str) -> None:
        self.db_url = db_url
        self.state = state
        self.key_text = key_text
        self.keys = KeyRing.parse(key_text)
        self.socket = Path(tempfile.mkdtemp(prefix="sec-", dir="/tmp")) / "control.sock"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="served-security")
        self.db: Database | None = None
        self.server: ControlServer | None = None

    async def _start(self) -> None:
        self.db = Database(self.db_url, TEST_DB_SETTINGS)
        await self.db.open()
        self.part = SecurityPart(self.db, MemorySessionStore(), state_dir=self.state,
                                 keys=load_key_ring(self.key_text), erasure_salt=None,
                                 retention=RetentionSettings())
        await self.part.start()
        trail = self.part.audit
        peer = control_peer(os.getuid(), os.getpid(), str(self.socket))

        def wired(method: Method) -> Method:
            async def handler(params: BaseModel) -> Any:
                return await trail.run_method(method.name, params, method.handler, peer,
                                              changes_state=method.changes_state)

            return Method(method.name, handler, method.params, method.summary)

        methods = [wired(m) for m in self.part.control_methods()]
        self.server = ControlServer(self.socket, methods, EventBus())
        await self.server.start()

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self.db is not None:
            await self.db.close()

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """Run `work` with the served database on the server's loop."""
        assert self.db is not None
        return asyncio.run_coroutine_threadsafe(work(self.db), self.loop).result(60)

    def __enter__(self) -> ServedSecurity:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
