"""A/B counts: a playbook's finished calls per version and variant, and how they ended."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import QUALIFIED_OUTCOMES, CallOutcome
from reautod.store.repositories._base import table
from reautod.store.sql import count_if

calls = table(m.Call)


@dataclass(frozen=True)
class VariantCounts:
    prompt_version: str
    variant: str
    calls: int  # calls with an outcome
    qualified: int  # qualified or booked
    booked: int


class ExperimentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def variant_counts(self, playbook: str,
                             prompt_version: str | None = None) -> list[VariantCounts]:
        """Per (version, variant) of `playbook`: calls that have an outcome, qualified, booked."""

        async def work(conn: AsyncConnection) -> list[VariantCounts]:
            query = (
                select(calls.c.prompt_version, calls.c.prompt_variant, func.count(),
                       count_if(calls.c.outcome.in_([o.value for o in QUALIFIED_OUTCOMES])),
                       count_if(calls.c.outcome == CallOutcome.BOOKED.value))
                .where(calls.c.playbook == playbook, calls.c.outcome.is_not(None),
                       calls.c.prompt_variant.is_not(None))
                .group_by(calls.c.prompt_version, calls.c.prompt_variant)
                .order_by(calls.c.prompt_version, calls.c.prompt_variant)
            )
            if prompt_version is not None:
                query = query.where(calls.c.prompt_version == prompt_version)
            return [VariantCounts(v, var, int(n), int(q), int(b))
                    for v, var, n, q, b in await conn.execute(query)]

        return await self.db.read(work)
