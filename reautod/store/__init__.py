"""The system of record: schema, migrations, repositories, write-behind queue, recordings, stats.

What the rest of reautod uses (the ORM models stay inside this package):
- `Database(url, settings.database)`: open / ensure_schema / ping / close, transactions.
- repositories in `reautod.store.repositories` (return frozen dataclasses).
- `WriteBehind` + the records in `reautod.store.records`: the call pipeline's write path.
- `CallRecorder`, `recover_partial_recordings`: call audio on disk.
- `daily_campaign_stats`: analytics.

They are imported on first use (PEP 562), so a light module of the package (`reautod.store.enums`,
which `reautoctl`'s result models use) does not pull SQLAlchemy and Alembic in with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reautod.store.database import Database
    from reautod.store.recordings import CallRecorder, RecoveryReport, recover_partial_recordings
    from reautod.store.records import (
        AgentDecisionRecord,
        AgentTransitionRecord,
        CallEnded,
        CallStarted,
        CallStatusChanged,
        CostRecorded,
        PlaybookAssigned,
        Record,
        RecordingFinalized,
        ScoreUpdate,
        TurnSpoken,
    )
    from reautod.store.schema import RevisionInfo, SchemaStatus
    from reautod.store.stats import DailyCampaignStats, daily_campaign_stats
    from reautod.store.writebehind import WriteBehind, WriteBehindStats

_WHERE = {
    "Database": "reautod.store.database",
    "CallRecorder": "reautod.store.recordings",
    "RecoveryReport": "reautod.store.recordings",
    "recover_partial_recordings": "reautod.store.recordings",
    "AgentDecisionRecord": "reautod.store.records",
    "AgentTransitionRecord": "reautod.store.records",
    "CallEnded": "reautod.store.records",
    "CallStarted": "reautod.store.records",
    "CallStatusChanged": "reautod.store.records",
    "CostRecorded": "reautod.store.records",
    "PlaybookAssigned": "reautod.store.records",
    "Record": "reautod.store.records",
    "RecordingFinalized": "reautod.store.records",
    "ScoreUpdate": "reautod.store.records",
    "TurnSpoken": "reautod.store.records",
    "RevisionInfo": "reautod.store.schema",
    "SchemaStatus": "reautod.store.schema",
    "DailyCampaignStats": "reautod.store.stats",
    "daily_campaign_stats": "reautod.store.stats",
    "WriteBehind": "reautod.store.writebehind",
    "WriteBehindStats": "reautod.store.writebehind",
}

__all__ = [
    "AgentDecisionRecord",
    "AgentTransitionRecord",
    "CallEnded",
    "CallRecorder",
    "CallStarted",
    "CallStatusChanged",
    "CostRecorded",
    "DailyCampaignStats",
    "Database",
    "PlaybookAssigned",
    "Record",
    "RecordingFinalized",
    "RecoveryReport",
    "RevisionInfo",
    "SchemaStatus",
    "ScoreUpdate",
    "TurnSpoken",
    "WriteBehind",
    "WriteBehindStats",
    "daily_campaign_stats",
    "recover_partial_recordings",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
