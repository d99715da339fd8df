from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from reautod.errors import UnavailableError
from reautod.observability.metrics import Metrics
from reautod.observability.metrics_server import start_metrics_server


async def test_serves_the_registry_on_a_free_port_without_blocking_the_loop() -> None:
    metrics = Metrics()
    metrics.live_calls.set(2)
    server = start_metrics_server(metrics, "127.0.0.1", 0)
    try:
        assert server.port > 0
        # the loop keeps running while the server thread answers
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
        assert response.status_code == 200
        assert "reautod_live_calls 2.0" in response.text
        assert "# TYPE reautod_turn_voice_to_voice_seconds histogram" in response.text
    finally:
        await asyncio.to_thread(server.close)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{server.port}/metrics")


def test_a_busy_port_is_a_clear_error() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        with pytest.raises(UnavailableError, match=f"127.0.0.1:{port}"):
            start_metrics_server(Metrics(), "127.0.0.1", port)
    finally:
        holder.close()
