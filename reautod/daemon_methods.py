"""The daemon's own control methods: status, health, version, config.show, daemon.reload,
daemon.drain (each returns a model of `control/results.py`; `config.show` the redacted settings).

They read the running daemon through `RunningDaemon`, what the composition root shows of
itself, and never build or start anything.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from reautod import __version__
from reautod.config import Secrets, Settings, redacted
from reautod.control.protocol import PROTOCOL_VERSION
from reautod.control.results import (
    DaemonState,
    DaemonStatus,
    DrainResult,
    EffectiveConfig,
    HealthReport,
    ReloadResult,
    VersionResult,
)
from reautod.health import HealthChecks
from reautod.methods import Method


class RunningDaemon(Protocol):
    """What the daemon's methods read of the running daemon (`reautod.daemon.Daemon`)."""

    @property
    def state(self) -> DaemonState: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def started_monotonic(self) -> float: ...

    @property
    def socket_path(self) -> Path: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def config_path(self) -> Path | None: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def secrets(self) -> Secrets: ...

    def ports(self) -> tuple[int | None, int | None]:
        """The HTTP and metrics ports, once bound."""
        ...

    def live_call_count(self) -> int: ...

    async def reload(self) -> ReloadResult: ...

    def request_stop(self) -> None: ...


class DaemonMethods:
    """The daemon's own methods; `methods()` is what the control socket registers first."""

    def __init__(self, daemon: RunningDaemon, health: HealthChecks) -> None:
        self._daemon = daemon
        self._health = health

    def methods(self) -> list[Method]:
        return [
            Method("status", self.status,
                   summary="Version, pid, uptime, paths, backends, ports, live calls"),
            Method("health", self.health, summary="Per-dependency health"),
            Method("version", self.version, summary="Daemon and protocol version"),
            Method("config.show", self.config_show,
                   summary="Effective configuration, secrets redacted"),
            Method("daemon.reload", self.reload, summary="Reload the configuration (like SIGHUP)",
                   changes_state=True),
            Method("daemon.drain", self.drain,
                   summary="Stop taking calls, finish live ones, then exit", changes_state=True),
        ]

    async def status(self, _params: BaseModel) -> DaemonStatus:
        daemon = self._daemon
        http_port, metrics_port = daemon.ports()
        return DaemonStatus(
            state=daemon.state,
            version=__version__,
            protocol=PROTOCOL_VERSION,
            pid=os.getpid(),
            started_at=daemon.started_at,
            uptime_s=round(time.monotonic() - daemon.started_monotonic, 3),
            socket=str(daemon.socket_path),
            state_dir=str(daemon.state_dir),
            config_file=str(daemon.config_path) if daemon.config_path else None,
            database_backend=daemon.settings.database_backend,
            session_backend=daemon.settings.session_backend,
            http_port=http_port,
            metrics_port=metrics_port,
            live_calls=daemon.live_call_count(),
        )

    async def health(self, _params: BaseModel) -> HealthReport:
        return await self._health.report()

    async def version(self, _params: BaseModel) -> VersionResult:
        return VersionResult(version=__version__, protocol=PROTOCOL_VERSION,
                             python=sys.version.split()[0])

    async def config_show(self, _params: BaseModel) -> EffectiveConfig:
        return EffectiveConfig(redacted(self._daemon.settings, self._daemon.secrets))

    async def reload(self, _params: BaseModel) -> ReloadResult:
        return await self._daemon.reload()

    async def drain(self, _params: BaseModel) -> DrainResult:
        self._daemon.request_stop()
        return DrainResult(draining=True, live_calls=self._daemon.live_call_count())
