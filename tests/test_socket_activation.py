"""systemd socket activation: the passed socket is taken only by its process, the variables go,
and the HTTP server serves on it (a request made before it started waits in the backlog)."""

from __future__ import annotations

import asyncio
import os
import socket

import httpx

from reautod.api.activation import listens_at, take_listen_sockets
from reautod.api.app import HttpServer, create_app
from reautod.control.results import HealthReport


async def healthy() -> HealthReport:
    return HealthReport(ok=True, checks={})


async def test_a_passed_socket_serves_http_and_its_backlog_waits() -> None:
    held = socket.create_server(("127.0.0.1", 0))  # what systemd holds while we "restart"
    port = held.getsockname()[1]
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "reautod.socket",
           "OTHER": "x"}
    (sock,) = take_listen_sockets(env, os.getpid(), start=os.dup(held.fileno()))
    held.close()
    assert env == {"OTHER": "x"} and listens_at(sock, "127.0.0.1", port)
    assert listens_at(sock, "127.0.0.1", 0) and not listens_at(sock, "127.0.0.1", port + 1)
    assert not listens_at(sock, "0.0.0.0", port)  # [http] wants every address, not loopback

    async with httpx.AsyncClient() as client:
        waiting = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/healthz"))
        await asyncio.sleep(0.3)  # connected, queued in the backlog: nobody accepts yet
        assert not waiting.done()
        server = HttpServer(create_app([], health=healthy), "ignored", 1, sock=sock)
        assert (server.host, server.port) == ("127.0.0.1", port)
        await server.start()
        try:
            assert (await waiting).status_code == 200
        finally:
            await server.close()


def test_sockets_for_another_process_are_left_alone() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1"}
    assert take_listen_sockets(env, os.getpid()) == [] and env == {}
    assert take_listen_sockets({}, os.getpid()) == []
