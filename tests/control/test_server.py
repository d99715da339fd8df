"""The control socket against bad and hostile clients, with a real server on a temp socket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from reautod.control.client import ControlClient
from reautod.control.protocol import MAX_LINE_BYTES, PROTOCOL_VERSION
from reautod.control.server import ControlServer, PeerCredentials
from reautod.errors import AlreadyRunningError, NotFoundError, ReautodError
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.security.principal import Principal, acting_as, current_principal


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class Echoed(BaseModel):
    text: str


class Recorder:
    def __init__(self) -> None:
        self.echoed: list[str] = []
        self.slow_started = asyncio.Event()

    async def echo(self, params: EchoParams) -> Echoed:
        self.echoed.append(params.text)
        return Echoed(text=params.text)

    async def untyped(self, params: EchoParams) -> Echoed:
        return {"text": params.text}  # type: ignore[return-value]  # the bug the server catches

    async def slow(self, _params: BaseModel) -> dict[str, bool]:
        self.slow_started.set()
        await asyncio.sleep(0.5)
        return {"done": True}

    async def fails(self, _params: BaseModel) -> None:
        raise NotFoundError("no call abc")

    async def crashes(self, _params: BaseModel) -> None:
        raise RuntimeError("boom")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControlServer, Recorder, Path]]:
    path = Path(os.environ["XDG_RUNTIME_DIR"]) / "c.sock"
    rec = Recorder()
    server = ControlServer(
        path,
        [
            Method("echo", rec.echo, EchoParams),
            Method("untyped", rec.untyped, EchoParams),
            Method("slow", rec.slow),
            Method("fails", rec.fails),
            Method("crashes", rec.crashes),
        ],
        EventBus(),
        subscriber_buffer=5,
    )
    await server.start()
    yield server, rec, path
    await server.close()


async def raw_exchange(path: Path, payload: bytes) -> list[dict]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_LINE_BYTES)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    replies = []
    while line := await reader.readline():
        replies.append(json.loads(line))
    writer.close()
    return replies


async def test_request_response_and_method_table(served) -> None:
    _, rec, path = served
    async with ControlClient(path) as client:
        assert await client.call("echo", {"text": "hi"}) == {"text": "hi"}
        table = await client.call("methods")
    assert table["version"] == PROTOCOL_VERSION
    results = {m["name"]: m["result"] for m in table["methods"]}
    # each method's result model, from its handler's return annotation
    assert results["echo"] == "Echoed" and results["methods"] == "MethodList"
    assert results["subscribe"] == "Subscribed" and results["slow"] is None
    assert rec.echoed == ["hi"]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{not json\n", "parse_error"),
        (b"[1, 2]\n", "bad_request"),
        (b'{"id": 1, "method": 5}\n', "bad_request"),
        (b'{"id": 1, "method": "nope", "params": {}}\n', "unknown_method"),
        (b'{"id": 1, "method": "echo", "params": {}}\n', "invalid_params"),
        (b'{"id": 1, "method": "echo", "params": {"text": "a", "extra": 1}}\n', "invalid_params"),
        (b'{"id": 1, "method": "echo", "params": [1]}\n', "invalid_params"),
        (b'{"id": {"x": 1}, "method": "echo"}\n', "bad_request"),
        (b'{"id": 1, "method": "fails"}\n', "not_found"),
        (b'{"id": 1, "method": "crashes"}\n', "internal"),
        (b'{"id": 1, "method": "untyped", "params": {"text": "a"}}\n', "internal"),
        (b"\xff\xfe\n", "parse_error"),
    ],
)
async def test_bad_requests_get_errors_and_the_connection_survives(
    served, line: bytes, code: str
) -> None:
    _, _rec, path = served
    replies = await raw_exchange(
        path, line + b'{"id": 2, "method": "echo", "params": {"text": "after"}}\n'
    )
    assert replies[0]["error"]["code"] == code
    assert replies[0]["error"]["message"]
    assert replies[1] == {"id": 2, "result": {"text": "after"}}


async def test_oversized_line_is_refused_and_others_are_undisturbed(served) -> None:
    _, rec, path = served
    async with ControlClient(path) as bystander:
        huge = (
            b'{"id": 1, "method": "echo", "params": {"text": "'
            + b"x" * (MAX_LINE_BYTES + 10)
            + b'"}}\n'
        )
        replies = await raw_exchange(path, huge)
        assert replies[0]["error"]["code"] == "line_too_long"
        assert await bystander.call("echo", {"text": "still here"}) == {"text": "still here"}
    assert "x" * 100 not in "".join(rec.echoed)


async def test_client_vanishing_mid_request_does_not_disturb_others(served) -> None:
    server, rec, path = served
    _reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b'{"id": 1, "method": "slow"}\n')
    await writer.drain()
    await rec.slow_started.wait()
    writer.transport.abort()  # gone before the answer is written
    async with ControlClient(path) as other:
        assert await other.call("echo", {"text": "ok"}) == {"text": "ok"}
    await asyncio.sleep(0.7)  # the slow handler finishes and writes into a dead socket
    async with ControlClient(path) as other:
        assert await other.call("echo", {"text": "still ok"}) == {"text": "still ok"}
    for _ in range(200):  # the server notices the last client's EOF on its own schedule
        if server.connection_count == 0:
            break
        await asyncio.sleep(0.01)
    assert server.connection_count == 0, "the vanished client's connection was released"


async def test_subscribe_streams_events_and_slow_subscribers_get_a_lagged_marker(served) -> None:
    server, _, path = served
    async with ControlClient(path) as client:
        events = client.subscribe()
        first = asyncio.ensure_future(events.__anext__())
        for _ in range(50):
            await asyncio.sleep(0.01)
            if server.bus.subscriber_count:
                break
        server.bus.publish("call.started", Echoed(text="c1"))
        got = await asyncio.wait_for(first, 5)
        assert got["event"] == "call.started" and got["data"] == {"text": "c1"}
        # flood faster than the client reads: buffer 5, so most are dropped and a marker says so
        for i in range(200):
            server.bus.publish("turn", Echoed(text=str(i)))
        seen = [await asyncio.wait_for(events.__anext__(), 5) for _ in range(6)]
        lagged = [e for e in seen if e["event"] == "lagged"]
        assert lagged and lagged[0]["data"]["dropped"] >= 190
        await events.aclose()


async def test_subscribe_with_topics_filters(served) -> None:
    server, _, path = served
    async with ControlClient(path) as client:
        events = client.subscribe(["call"])
        nxt = asyncio.ensure_future(events.__anext__())
        for _ in range(500):
            if server.bus.subscriber_count:
                break
            await asyncio.sleep(0.01)
        server.bus.publish("turn", Echoed(text="skip"))
        server.bus.publish("call.ended", Echoed(text="c1"))
        assert (await asyncio.wait_for(nxt, 5))["event"] == "call.ended"
        await events.aclose()


async def test_second_server_on_the_same_socket_refuses(served) -> None:
    _, _, path = served
    with pytest.raises(AlreadyRunningError, match="already running"):
        await ControlServer(path, [], EventBus()).start()


def test_peer_credentials_policy(tmp_path: Path) -> None:
    server = ControlServer(
        tmp_path / "x.sock", [], EventBus(), allowed_uids=[1234], allowed_gids=[777]
    )
    assert server._authorised(PeerCredentials(os.getpid(), 0, 0))  # root always
    assert server._authorised(PeerCredentials(os.getpid(), os.getuid(), 0))  # our own user
    assert server._authorised(PeerCredentials(os.getpid(), 1234, 5))
    assert server._authorised(PeerCredentials(999_999_999, 4321, 777))  # by primary group
    assert not server._authorised(PeerCredentials(999_999_999, 4321, 4321))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another user")
async def test_unlisted_user_is_refused_by_peer_credentials(tmp_path: Path) -> None:
    sock_dir = Path(os.environ["XDG_RUNTIME_DIR"])
    os.chmod(sock_dir, 0o755)
    path = sock_dir / "p.sock"
    server = ControlServer(path, [], EventBus())
    await server.start()
    os.chmod(path, 0o666)  # let the file mode through so SO_PEERCRED is what decides
    # the refusal is sent as soon as the peer connects, before it says anything
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket(socket.AF_UNIX); s.connect({str(path)!r})
        print(s.makefile().readline().strip())
    """)
    try:
        out = await asyncio.to_thread(
            subprocess.run,
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert json.loads(out.stdout)["error"]["code"] == "permission_denied", out.stderr
        assert server.rejected_peers == 1
    finally:
        await server.close()


async def test_daemon_errors_surface_as_reautod_errors(served) -> None:
    _, _, path = served
    async with ControlClient(path) as client:
        with pytest.raises(ReautodError) as info:
            await client.call("fails")
    assert info.value.code == "not_found"


class AuditorFake:
    """MethodAuditor: runs the handler as the principal, recording what it was given."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, bool]] = []

    async def run_method(self, name: str, params: BaseModel,
                         handler: Callable[[BaseModel], Awaitable[Any]], principal: Principal, *,
                         changes_state: bool) -> Any:
        self.runs.append((name, principal.subject, changes_state))
        with acting_as(principal):
            return await handler(params)


async def test_methods_run_as_the_peer_and_go_through_the_auditor(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def whoami(_params: BaseModel) -> dict[str, str | None]:
        who = current_principal()
        seen.append(who.subject if who else None)
        return {"subject": who.subject if who else None}

    path = Path(os.environ["XDG_RUNTIME_DIR"]) / "a.sock"
    server = ControlServer(path, [Method("whoami", whoami), Method("change", whoami,
                                                                   changes_state=True)],
                           EventBus())
    await server.start()
    try:
        async with ControlClient(path) as client:
            # before the daemon hands over the audit trail: still run as the peer
            assert await client.call("whoami") == {"subject": f"uid:{os.getuid()}"}
            auditor = AuditorFake()
            server.audit_with(auditor)
            await client.call("whoami")
            await client.call("change")
    finally:
        await server.close()
    assert seen == [f"uid:{os.getuid()}"] * 3
    assert auditor.runs == [("whoami", f"uid:{os.getuid()}", False),
                            ("change", f"uid:{os.getuid()}", True)]


def test_the_bus_takes_only_payload_models() -> None:
    bus = EventBus()
    with pytest.raises(TypeError, match="topic's model"):
        bus.publish("turn", {"call_id": "c1"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown event"):
        bus.publish("nonsense", Echoed(text="x"))
