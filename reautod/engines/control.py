"""Control-socket methods of the engines: their health, queues and counters."""

from __future__ import annotations

from pydantic import BaseModel

from reautod.engines.registry import EngineSet
from reautod.engines.results import EnginesReport
from reautod.methods import Method, NoParams


def engine_methods(engines: EngineSet) -> list[Method]:
    """`engines.status`: per engine state (missing / failed / ready, with the fix), stats."""

    async def status(_params: BaseModel) -> EnginesReport:
        return engines.report()

    return [
        Method("engines.status", status, NoParams,
               summary="per engine: model, state and why, queue depth, request counters"),
    ]
