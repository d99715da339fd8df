"""The daemon's health aggregation and its own methods, without a daemon: checks that fail,
raise or hang are reported as failing; a change is published once; the methods read the
running daemon through `RunningDaemon`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from reautod import __version__
from reautod.config import Secrets, Settings
from reautod.control.results import DaemonState, ReloadResult
from reautod.daemon_methods import DaemonMethods
from reautod.errors import UnavailableError
from reautod.health import HealthChecks
from reautod.methods import NoParams
from reautod.observability.events import EventBus


async def test_a_check_that_raises_or_hangs_is_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reautod.health.CHECK_TIMEOUT_S", 0.05)
    checks = HealthChecks()

    async def ok() -> tuple[bool, str]:
        return True, "fine"

    async def broken() -> tuple[bool, str]:
        raise UnavailableError("the model is missing")

    async def hangs() -> tuple[bool, str]:
        await asyncio.sleep(10)
        return True, "never"

    checks.add("ok", ok)
    checks.update({"broken": broken, "hangs": hangs})
    report = await checks.report()
    assert not report.ok
    assert {name: (c.ok, c.detail) for name, c in report.checks.items()} == {
        "ok": (True, "fine"), "broken": (False, "the model is missing"),
        "hangs": (False, "no answer within 0 s")}


async def test_a_change_is_published_once() -> None:
    checks, bus = HealthChecks(), EventBus()
    state = {"ok": True}

    async def flapping() -> tuple[bool, str]:
        return state["ok"], "up" if state["ok"] else "down"

    checks.add("redis", flapping)
    events = bus.subscribe(["health.changed"])
    watch = asyncio.create_task(checks.watch(bus, interval_s=0.01))
    try:
        await asyncio.sleep(0.05)  # healthy from the start: nothing to tell
        state["ok"] = False
        down = await asyncio.wait_for(events.get(), 2)
        state["ok"] = True
        up = await asyncio.wait_for(events.get(), 2)
        assert (down.data.name, down.data.ok, down.data.detail) == ("redis", False, "down")
        assert (up.data.ok, up.data.detail) == (True, "up")
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)


@dataclass
class FakeDaemon:
    """A `RunningDaemon`: what the methods read, and what they asked of it."""

    state: DaemonState = "ready"
    started_at: datetime = datetime(2026, 12, 6, tzinfo=UTC)
    started_monotonic: float = 0.0
    socket_path: Path = Path("/run/reautod/control.sock")
    state_dir: Path = Path("/var/lib/reautod")
    config_path: Path | None = None
    settings: Settings = field(default_factory=Settings)
    secrets: Secrets = field(
        default_factory=lambda: Secrets({"jwt_secret": SecretStr("do-not-show")}))
    stops: int = 0
    reloads: int = 0

    def ports(self) -> tuple[int | None, int | None]:
        return 8080, None

    def live_call_count(self) -> int:
        return 2

    async def reload(self) -> ReloadResult:
        self.reloads += 1
        return ReloadResult(reloaded=True, detail="")

    def request_stop(self) -> None:
        self.stops += 1


async def test_the_daemons_methods_read_the_running_daemon() -> None:
    daemon = FakeDaemon()
    methods = {m.name: m for m in DaemonMethods(daemon, HealthChecks()).methods()}
    assert {n for n, m in methods.items() if m.changes_state} == {"daemon.reload", "daemon.drain"}
    status = await methods["status"].handler(NoParams())
    assert (status.state, status.http_port, status.metrics_port, status.live_calls) == (
        "ready", 8080, None, 2)
    assert status.version == __version__ and status.config_file is None
    assert (await methods["health"].handler(NoParams())).ok  # no checks yet: nothing failing
    assert (await methods["version"].handler(NoParams())).version == __version__
    assert "do-not-show" not in str(await methods["config.show"].handler(NoParams()))
    assert (await methods["daemon.reload"].handler(NoParams())).reloaded and daemon.reloads == 1
    drained = await methods["daemon.drain"].handler(NoParams())
    assert (drained.draining, drained.live_calls, daemon.stops) == (True, 2, 1)
