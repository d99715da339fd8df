"""Typed results of the daemon's own control methods: status, health, version, daemon.reload,
daemon.drain. The daemon (composition root) builds them; `reautoctl` and the TUI parse them.

`HealthReport.checks` is a dict of named checks that parts add as they start; a field added
to a model later is ignored by an older client (pydantic's default), so the health answer can
grow (e.g. the circuit breakers' states) without breaking one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


DaemonState = Literal["starting", "ready", "stopping"]


class DaemonStatus(_Result):
    """`status`: what the daemon is, where, and how busy."""

    state: DaemonState
    version: str
    protocol: int = Field(description="Control protocol version")
    pid: int
    started_at: datetime
    uptime_s: float
    socket: str
    state_dir: str
    config_file: str | None
    database_backend: str = Field(description="sqlite or postgres")
    session_backend: str = Field(description="memory or redis")
    http_port: int | None
    metrics_port: int | None
    live_calls: int


class CheckResult(_Result):
    """One dependency's health (also the `health.changed` event, with its `name`)."""

    ok: bool
    detail: str


class HealthReport(_Result):
    """`health`: every named check and whether all pass."""

    ok: bool
    checks: dict[str, CheckResult] = Field(description="database, redis, models, http, ...")


class VersionResult(_Result):
    """`version`: the daemon's package and protocol versions."""

    version: str
    protocol: int
    python: str


class ReloadResult(_Result):
    """`daemon.reload` (and SIGHUP): whether the new configuration was taken."""

    reloaded: bool
    detail: str = Field(description="Why not, or the sections that need a restart")


class DrainResult(_Result):
    """`daemon.drain`: the daemon takes no new calls and exits once live ones finish."""

    draining: bool
    live_calls: int


class MethodInfo(_Result):
    """One row of `methods`: a method's name, what it does, its params and result."""

    name: str
    summary: str
    params: dict[str, Any] = Field(description="The params model's JSON schema")
    result: str | None = Field(description="The name of the result model it answers with")
    changes_state: bool = False


class MethodList(_Result):
    """`methods`: the protocol version and every method served."""

    version: int
    methods: list[MethodInfo]


class Subscribed(_Result):
    """`subscribe`'s answer; events follow on the same connection."""

    subscribed: list[str] | Literal["all"]


class EffectiveConfig(RootModel[dict[str, Any]]):
    """`config.show`: the settings tree the daemon runs with (docs/configuration.md), derived
    paths resolved and secrets masked. Free-form here on purpose: its shape is the `Settings`
    model's, which the client reads from the same config file, not a wire contract of its own."""
