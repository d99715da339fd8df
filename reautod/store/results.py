"""Typed results of the store's control methods (`db.status`, `stats.daily`)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from reautod.store.stats import DailyCampaignStats
from reautod.store.writebehind import WriteBehindStats


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class DbStatus(_Result):
    """`db.status`: where the database is, whether it answers, its schema, the write-behind."""

    backend: str = Field(description="sqlite or postgres")
    url: str = Field(description="The database URL, password masked")
    reachable: bool
    error: str | None = Field(description="Why not, when unreachable")
    ping_ms: float | None
    revision: str | None = Field(None, description="Schema revision (None when unreachable)")
    head: str | None = Field(None, description="The code's newest revision")
    up_to_date: bool | None = None
    write_behind: WriteBehindStats | None = Field(None, description="Queue counters since start")


class DailyStats(_Result):
    """`stats.daily`: per UTC day and campaign, attempts to cost (as `reautoctl stats`)."""

    since: date = Field(description="The first UTC day counted")
    days: list[DailyCampaignStats]
