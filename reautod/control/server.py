"""The control-socket server: newline-delimited JSON requests, responses and event streams.

One task per connection owns that connection's state. A bad request gets an error response; a
line over MAX_LINE_BYTES or an unauthorised peer closes that connection; nothing a client does
reaches other clients or the daemon.

Every method runs as the verified peer (`control_peer`: its uid from SO_PEERCRED); once the daemon
hands over the audit trail (`audit_with`), each call of a state-changing method (`changes_state`)
is written to the audit log with that uid as the actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from reautod.control.protocol import MAX_LINE_BYTES, PROTOCOL_VERSION, encode, error_body
from reautod.control.results import MethodInfo, MethodList, Subscribed
from reautod.errors import AlreadyRunningError, ReautodError
from reautod.methods import Method
from reautod.observability.events import EventBus, Subscription
from reautod.security.principal import Principal, acting_as, control_peer

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660


class SubscribeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topics: list[str] | None = None


class MethodAuditor(Protocol):
    """Runs a method as its caller and audits the state-changing ones (security.AuditTrail)."""

    async def run_method(self, name: str, params: BaseModel,
                         handler: Callable[[BaseModel], Awaitable[Any]], principal: Principal, *,
                         changes_state: bool) -> Any: ...


class PeerCredentials:
    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.pid, self.uid, self.gid = pid, uid, gid

    @classmethod
    def of(cls, sock: socket.socket) -> PeerCredentials:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return cls(*struct.unpack("3i", raw))

    def groups(self) -> set[int]:
        """Primary and supplementary gids of the peer process (supplementary best effort)."""
        gids = {self.gid}
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("Groups:"):
                    gids.update(int(g) for g in line.split()[1:])
        return gids


class ControlServer:
    """Serves the method table on a Unix socket; `subscribe` streams events from the bus."""

    def __init__(
        self,
        path: Path,
        methods: Iterable[Method],
        bus: EventBus,
        *,
        allowed_uids: Iterable[int] = (),
        allowed_gids: Iterable[int] = (),
        subscriber_buffer: int = 1000,
    ) -> None:
        self.path = path
        self.bus = bus
        self._methods: dict[str, Method] = {}
        self._allowed_uids = {0, os.getuid(), *allowed_uids}
        self._allowed_gids = set(allowed_gids)
        self._subscriber_buffer = subscriber_buffer
        self._server: asyncio.Server | None = None
        self._lock_fd: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.rejected_peers = 0
        self._auditor: MethodAuditor | None = None
        for method in methods:
            self.register(method)
        self.register(Method("methods", self._list_methods, summary="Method table and version"))
        self.register(
            Method(
                "subscribe",
                self._list_methods,
                SubscribeParams,
                "Stream events on this connection until the client leaves",
                streams=True,
                result=Subscribed,
            )
        )

    def register(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"method {method.name} registered twice")
        self._methods[method.name] = method

    def method_table(self) -> dict[str, Method]:
        """The methods served (a copy), for another transport to serve too (the admin API)."""
        return dict(self._methods)

    def audit_with(self, auditor: MethodAuditor) -> None:
        """From now on, state-changing methods are audited (the log lives in the database, which
        opens after the socket is bound)."""
        self._auditor = auditor

    async def run(self, method: Method, params: BaseModel, peer: PeerCredentials) -> Any:
        """Run `method` as the peer; audited when it changes state and an auditor is set."""
        principal = control_peer(peer.uid, peer.pid, str(self.path))
        if self._auditor is None:
            with acting_as(principal):
                return await method.handler(params)
        return await self._auditor.run_method(method.name, params, method.handler, principal,
                                              changes_state=method.changes_state)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def _list_methods(self, _params: BaseModel) -> MethodList:
        return MethodList(version=PROTOCOL_VERSION, methods=[
            MethodInfo(name=m.name, summary=m.summary, params=m.params.model_json_schema(),
                       result=m.result.__name__ if m.result else None,
                       changes_state=m.changes_state)
            for m in sorted(self._methods.values(), key=lambda m: m.name)])

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket; refuse if another daemon serves it; remove a stale socket file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        if self.path.exists() or self.path.is_symlink():
            # we hold the lock, so whatever is there was left by a dead daemon
            self.path.unlink()
        old_umask = os.umask(0o117)  # the socket is born 0660, never briefly wider
        try:
            self._server = await asyncio.start_unix_server(
                self._on_connect, path=str(self.path), limit=MAX_LINE_BYTES + 1
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, SOCKET_MODE)
        log.info("control socket listening on %s", self.path)

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
                holder = ""
                with contextlib.suppress(OSError, ValueError):
                    holder = f" (pid {int(lock_path.read_text().strip())})"
                raise AlreadyRunningError(
                    f"another reautod is already running on {self.path}{holder}"
                ) from err
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in tuple(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + ".lock").unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- connections -------------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # always inside a task here
        self._connections.add(task)
        try:
            sock = writer.get_extra_info("socket")
            peer = PeerCredentials.of(sock)
            if not self._authorised(peer):
                self.rejected_peers += 1
                log.warning(
                    "control: refused peer uid=%d gid=%d pid=%d", peer.uid, peer.gid, peer.pid
                )
                writer.write(
                    encode(
                        {
                            "id": None,
                            "error": error_body(
                                "permission_denied",
                                "this user may not use the reautod control socket",
                            ),
                        }
                    )
                )
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                return
            await _Connection(self, reader, writer, peer).serve()
        except (ConnectionError, BrokenPipeError):
            pass  # the client vanished; nothing else is affected
        except asyncio.CancelledError:
            # only close() cancels these; returning (not re-raising) keeps asyncio's
            # client_connected_cb from logging every open client as an error at shutdown
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _authorised(self, peer: PeerCredentials) -> bool:
        if peer.uid in self._allowed_uids:
            return True
        return bool(self._allowed_gids & peer.groups())


class _Connection:
    """One client: reads requests in order, writes responses and events through one lock."""

    def __init__(
        self, server: ControlServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        peer: PeerCredentials,
    ) -> None:
        self.server = server
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self._write_lock = asyncio.Lock()
        self._subscription: Subscription | None = None
        self._forwarder: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        try:
            while True:
                try:
                    line = await self.reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    await self._send(
                        {
                            "id": None,
                            "error": error_body(
                                "line_too_long", f"request line exceeds {MAX_LINE_BYTES} bytes"
                            ),
                        }
                    )
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                await self._send(await self._handle(line))
        finally:
            if self._subscription is not None:
                self._subscription.close()
            if self._forwarder is not None:
                self._forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await self._forwarder

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._write_lock:
            self.writer.write(encode(message))
            await self.writer.drain()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return {"id": None, "error": error_body("parse_error", f"not valid JSON: {err}")}
        if not isinstance(request, dict):
            return {"id": None, "error": error_body("bad_request", "a request is a JSON object")}
        request_id = request.get("id")
        if request_id is not None and not isinstance(request_id, int | str):
            return {
                "id": None,
                "error": error_body("bad_request", "id must be an integer or string"),
            }
        name = request.get("method")
        if not isinstance(name, str):
            return {"id": request_id, "error": error_body("bad_request", "method must be a string")}
        method = self.server._methods.get(name)
        if method is None:
            return {"id": request_id, "error": error_body("unknown_method", f"no method {name!r}")}
        raw_params = request.get("params", {})
        if raw_params is None:
            raw_params = {}
        if not isinstance(raw_params, dict):
            return {
                "id": request_id,
                "error": error_body("invalid_params", "params must be an object"),
            }
        try:
            params = method.params.model_validate(raw_params)
        except PydanticValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                for e in err.errors()
            )
            return {"id": request_id, "error": error_body("invalid_params", problems)}
        if method.streams:  # `subscribe`: served by the connection, not by a handler
            assert isinstance(params, SubscribeParams)
            return {"id": request_id, "result": self._subscribe(params)}
        try:
            result = method.checked(await self.server.run(method, params, self.peer))
        except ReautodError as err:
            return {"id": request_id, "error": error_body(err.code, err.message)}
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("control method %s failed", name)
            return {
                "id": request_id,
                "error": error_body("internal", f"{type(err).__name__}: {err}"),
            }
        return {"id": request_id, "result": result}

    def _subscribe(self, params: SubscribeParams) -> Subscribed:
        if self._subscription is None:
            self._subscription = self.server.bus.subscribe(
                params.topics, maxsize=self.server._subscriber_buffer
            )
            self._forwarder = asyncio.create_task(self._forward_events(self._subscription))
        return Subscribed(subscribed=sorted(params.topics) if params.topics else "all")

    async def _forward_events(self, subscription: Subscription) -> None:
        try:
            async for event in subscription:
                await self._send(event.wire())
        except (ConnectionError, BrokenPipeError):
            subscription.close()
