"""Control-socket methods of the store: `db.status` (schema, reachability, write-behind) and
`stats.daily` (the same aggregates as `reautoctl stats`, for the TUI)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from reautod.errors import UnavailableError
from reautod.methods import Method, NoParams
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository
from reautod.store.results import DailyStats, DbStatus
from reautod.store.stats import daily_campaign_stats
from reautod.store.writebehind import WriteBehind


class DailyStatsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign: str | None = None  # name or id
    since: date | None = None  # first UTC day; default 7 days ago


def store_methods(db: Database, write_behind: WriteBehind | None = None) -> list[Method]:
    async def status(_params: BaseModel) -> DbStatus:
        started = time.perf_counter()
        try:
            await db.ping()
            reachable, error = True, None
        except UnavailableError as err:
            reachable, error = False, err.message
        ping_ms = round((time.perf_counter() - started) * 1000, 2)
        schema = await db.schema_status() if reachable else None
        return DbStatus(
            backend=db.backend, url=db.display_url(), reachable=reachable, error=error,
            ping_ms=ping_ms if reachable else None,
            revision=schema.current if schema else None, head=schema.head if schema else None,
            up_to_date=schema.up_to_date if schema else None,
            write_behind=write_behind.stats() if write_behind is not None else None)

    async def daily(params: DailyStatsParams) -> DailyStats:
        day = params.since or (datetime.now(UTC).date() - timedelta(days=6))
        since = datetime(day.year, day.month, day.day, tzinfo=UTC)
        campaign_id = None
        if params.campaign:
            campaign_id = (await CampaignRepository(db).find(params.campaign)).id
        rows = await daily_campaign_stats(db, since, campaign_id)
        return DailyStats(since=day, days=rows)

    return [
        Method("db.status", status, NoParams,
               summary="database backend, reachability, schema revision, write-behind counters"),
        Method("stats.daily", daily, DailyStatsParams,
               summary="daily aggregates per campaign (attempts, connects, qualified, booked, cost)"),
    ]
