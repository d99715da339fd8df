"""The daemon's health: one check per dependency, aggregated into `HealthReport`, watched for
changes (`health.changed` events). Parts register their checks as they start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from reautod.api.app import HttpServer
from reautod.control.results import CheckResult, HealthReport
from reautod.errors import ReautodError
from reautod.observability.events import EventBus
from reautod.sessions import SessionStore
from reautod.store import Database
from reautod.store.writebehind import WriteBehindStats
from reautod.topics import HealthChanged

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[tuple[bool, str]]]

CHECK_TIMEOUT_S = 3.0
WATCH_INTERVAL_S = 5.0


class HealthChecks:
    """Named checks, each answering (ok, detail); a check that raises or hangs is failing."""

    def __init__(self) -> None:
        self._checks: dict[str, HealthCheck] = {}

    def add(self, name: str, check: HealthCheck) -> None:
        self._checks[name] = check

    def update(self, checks: dict[str, HealthCheck]) -> None:
        self._checks.update(checks)

    async def report(self) -> HealthReport:
        checks: dict[str, CheckResult] = {}
        for name, check in list(self._checks.items()):  # parts add checks as they start
            try:
                ok, detail = await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
            except TimeoutError:
                ok, detail = False, f"no answer within {CHECK_TIMEOUT_S:.0f} s"
            except ReautodError as err:
                ok, detail = False, err.message
            checks[name] = CheckResult(ok=ok, detail=detail)
        return HealthReport(ok=all(c.ok for c in checks.values()), checks=checks)

    async def watch(self, bus: EventBus, interval_s: float = WATCH_INTERVAL_S) -> None:
        """Publish `health.changed` when a dependency goes up or down (and log it once)."""
        known: dict[str, bool] = {}
        while True:
            report = await self.report()
            for name, check in report.checks.items():
                if known.get(name, True) != check.ok:
                    (log.info if check.ok else log.warning)(
                        "health: %s is %s: %s",
                        name,
                        "ok" if check.ok else "failing",
                        check.detail,
                    )
                    bus.publish("health.changed", HealthChanged(name=name, ok=check.ok,
                                                                detail=check.detail))
                known[name] = check.ok
            await asyncio.sleep(interval_s)


def database_check(db: Database,
                   queue_stats: Callable[[], WriteBehindStats | None]) -> HealthCheck:
    """The database answers, its schema is current; the write-behind queue's spooling shown
    (`queue_stats`: None before the queue exists)."""

    async def check() -> tuple[bool, str]:
        await db.ping()
        status = await db.schema_status()
        queue = queue_stats()
        spooling = f", spooling ({queue.last_error})" if queue and queue.spooling else ""
        return status.up_to_date, f"{db.backend} at revision {status.current}{spooling}"

    return check


def sessions_check(sessions: SessionStore) -> HealthCheck:
    """The live-session store answers."""

    async def check() -> tuple[bool, str]:
        await sessions.ping()
        return True, f"{sessions.backend} session store"

    return check


def http_check(http: HttpServer) -> HealthCheck:
    """The HTTP side (webhooks, media, admin API) is listening."""

    async def check() -> tuple[bool, str]:
        return http.running, f"listening on {http.scheme}://{http.host}:{http.port}"

    return check
