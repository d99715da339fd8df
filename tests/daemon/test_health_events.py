"""`health.changed` events follow a dependency going away and coming back (Redis, for real), and
so do the redis circuit's `circuit.changed` events: open while it is away, closed once back."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from reautod.control.client import ControlClient
from tests.fixtures.services import free_port


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


async def next_health(events: Any, name: str) -> dict[str, Any]:
    async for event in events:
        if event["event"] == "health.changed" and event["data"]["name"] == name:
            return dict(event["data"])
    raise AssertionError("event stream ended")


async def circuit_states(events: Any, circuit: str, seen: list[str]) -> None:
    async for event in events:
        if event["event"] == "circuit.changed" and event["data"]["circuit"] == circuit:
            seen.append(event["data"]["state"])


async def test_health_changed_when_redis_dies_and_returns(daemon_factory, tmp_path: Path) -> None:
    port = free_port()
    redis = start_redis(port, tmp_path)
    d = daemon_factory()
    d.config_path.write_text(
        f'state_dir = "{d.workdir / "state"}"\nredis_url = "redis://127.0.0.1:{port}/0"\n'
        "[http]\nport = 0\n[metrics]\nport = 0\n"
        "[resilience.redis]\nfailures = 2\nrecovery_s = 1.0\n"  # one failed ping opens it
    )
    try:
        d.start()
        await asyncio.to_thread(d.wait_ready)
        async with ControlClient(d.socket_path) as client, \
                ControlClient(d.socket_path) as watcher:
            circuits = watcher.subscribe(["circuit"])
            states: list[str] = []
            watching = asyncio.ensure_future(circuit_states(circuits, "redis", states))
            events = client.subscribe(["health"])
            waiter = asyncio.ensure_future(next_health(events, "redis"))
            await asyncio.sleep(0.5)  # subscribed before the dependency changes
            redis.terminate()
            redis.wait(10)
            down = await asyncio.wait_for(waiter, 30)
            assert down["ok"] is False and "redis" in down["detail"]
            redis = start_redis(port, tmp_path)
            up = await asyncio.wait_for(next_health(events, "redis"), 30)
            assert up["ok"] is True
            # the health pings went through the circuit: it opened, and a probe closed it
            assert states[0] == "open" and states[-1] == "closed", states
            async with ControlClient(d.socket_path) as asker:
                health = await asker.call("health")
            assert health["checks"]["circuits"]["ok"], health
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            await events.aclose()
            await circuits.aclose()
    finally:
        redis.terminate()
        redis.wait(10)
