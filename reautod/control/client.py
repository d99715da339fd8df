"""Async client of the control socket, used by reautoctl, the TUI and tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from reautod.control.protocol import MAX_LINE_BYTES, encode
from reautod.errors import NotRunningError, ProtocolError, ReautodError


class ControlClient:
    """One connection to the daemon; `call` for request/response, `subscribe` for events."""

    def __init__(self, path: Path | str, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path), limit=MAX_LINE_BYTES * 4), self.timeout
            )
        except (FileNotFoundError, ConnectionRefusedError) as err:
            raise NotRunningError(f"reautod is not running (no daemon on {self.path})") from err
        except PermissionError as err:
            raise NotRunningError(f"no permission to open {self.path}") from err
        except TimeoutError as err:
            raise NotRunningError(f"reautod did not answer on {self.path}") from err

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            self._writer = None

    async def __aenter__(self) -> ControlClient:
        await self.connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _send(self, method: str, params: dict[str, Any]) -> int:
        if self._writer is None:
            await self.connect()
        assert self._writer is not None  # for mypy: connect() set it or raised
        request_id = next(self._ids)
        self._writer.write(encode({"id": request_id, "method": method, "params": params}))
        await self._writer.drain()
        return request_id

    async def _read_message(self, timeout: float | None) -> dict[str, Any]:
        assert self._reader is not None
        try:
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        except TimeoutError as err:
            raise ReautodError("reautod did not answer in time", code="timeout") from err
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            raise NotRunningError("reautod closed the connection") from err
        if not line:
            raise NotRunningError("reautod closed the connection")
        try:
            message = json.loads(line)
        except json.JSONDecodeError as err:
            raise ProtocolError(f"malformed message from reautod: {err}") from err
        if not isinstance(message, dict):
            raise ProtocolError("malformed message from reautod: not an object")
        return message

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one request and return its `result`; a daemon error becomes a ReautodError."""
        request_id = await self._send(method, params or {})
        while True:
            message = await self._read_message(self.timeout)
            if message.get("id") != request_id:
                continue  # an event interleaved on a subscribed connection
            if "error" in message:
                err = message["error"] or {}
                raise ReautodError(
                    str(err.get("message", "error")), code=str(err.get("code", "internal"))
                )
            return message.get("result")

    async def subscribe(self, topics: list[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield events (`{"event", "ts", "data"}`) until the daemon goes away."""
        await self.call("subscribe", {"topics": topics} if topics else {})
        while True:
            message = await self._read_message(None)
            if "event" in message:
                yield message
