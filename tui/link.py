"""The TUI's connection to the daemon: events on one connection, polled snapshots on another.

`DaemonLink.run()` never returns on its own: it connects, subscribes, polls, and when the daemon
goes away (restart, crash, drain) it reports "disconnected" and retries with capped exponential
backoff. Two connections because a subscribed connection interleaves events with responses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reautod.control.client import ControlClient
from reautod.errors import NotRunningError, ProtocolError, ReautodError

log = logging.getLogger(__name__)

# Polled every refresh: what has no event (campaign progress, health checks) and a full resync
# after anything missed (a `lagged` marker, the gap between snapshot and subscription).
SNAPSHOT_METHODS = ("status", "health", "calls.list", "campaigns.list")


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.initial_s
        while True:
            yield delay
            delay = min(self.max_s, delay * self.factor)


class LinkListener(Protocol):
    """What the link reports to (the App); all calls happen on the app's event loop."""

    def link_up(self) -> None: ...

    def link_down(self, reason: str, retry_in_s: float) -> None: ...

    def link_snapshot(self, results: Mapping[str, Any], errors: Mapping[str, str]) -> None: ...

    def link_event(self, message: Mapping[str, Any]) -> None: ...


class DaemonLink:
    def __init__(
        self,
        socket_path: Path,
        listener: LinkListener,
        *,
        refresh_s: float = 2.0,
        backoff: Backoff | None = None,
        timeout_s: float = 5.0,
        client_factory: Callable[[Path, float], ControlClient] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.listener = listener
        self.refresh_s = refresh_s
        self.backoff = backoff or Backoff()
        self.timeout_s = timeout_s
        self._client = client_factory or (lambda path, timeout: ControlClient(path, timeout=timeout))
        self.sessions = 0  # how many times it has connected
        self._connected_this_round = False

    async def run(self) -> None:
        delays = self.backoff.delays()
        while True:
            reason = "reautod closed the connection"
            try:
                await self._session()
            except* NotRunningError as group:
                reason = _first_message(group)
            except* ReautodError as group:
                reason = _first_message(group)
            except* OSError as group:
                reason = _first_message(group)
            if self._connected_this_round:
                delays = self.backoff.delays()  # a fresh outage starts at the initial delay
            delay = next(delays)
            self.listener.link_down(reason, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        self._connected_this_round = False
        events = self._client(self.socket_path, self.timeout_s)
        rpc = self._client(self.socket_path, self.timeout_s)
        try:
            await events.connect()
            await rpc.connect()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump_events(events))
                group.create_task(self._poll(rpc))
        finally:
            await events.close()
            await rpc.close()

    async def _pump_events(self, client: ControlClient) -> None:
        async for message in client.subscribe():
            self.listener.link_event(message)
        raise NotRunningError("reautod closed the event stream")

    async def _poll(self, client: ControlClient) -> None:
        while True:
            results: dict[str, Any] = {}
            errors: dict[str, str] = {}
            for method in SNAPSHOT_METHODS:
                try:
                    results[method] = await client.call(method, {})
                except (NotRunningError, ProtocolError):
                    raise  # the connection is gone or garbled: reconnect
                except ReautodError as err:
                    if err.code == "timeout":
                        raise  # a daemon that stopped answering: reconnect
                    # the daemon answered with an error (a part absent, starting or failing):
                    # keep what we last had for it, say so, and stay connected
                    results[method] = None
                    if err.code != "unknown_method":
                        errors[method] = f"{err.code}: {err.message}"
            if not self._connected_this_round:
                self._connected_this_round = True
                self.sessions += 1
                self.listener.link_up()
            self.listener.link_snapshot(results, errors)
            await asyncio.sleep(self.refresh_s)


def _first_message(group: BaseExceptionGroup[Any]) -> str:
    for err in group.exceptions:
        if isinstance(err, BaseExceptionGroup):
            return _first_message(err)
        if isinstance(err, ReautodError):
            return err.message
        return str(err) or type(err).__name__
    return "disconnected"


async def call_daemon(
    socket_path: Path, method: str, params: Mapping[str, Any], *, timeout_s: float = 10.0
) -> Any:
    """One request on a short-lived connection (the actions: hang up, pause, drain, ...)."""
    async with ControlClient(socket_path, timeout=timeout_s) as client:
        return await client.call(method, dict(params))
