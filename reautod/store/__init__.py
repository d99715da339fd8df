"""The system of record: schema, migrations, repositories, write-behind queue, recordings, stats.

What the rest of reautod uses (the ORM models stay inside this package):
- `Database(url, settings.database)`: open / ensure_schema / ping / close, transactions.
- repositories in `reautod.store.repositories` (return frozen dataclasses).
- `WriteBehind` + the records in `reautod.store.records`: the call pipeline's write path.
- `CallRecorder`, `recover_partial_recordings`: call audio on disk.
- `daily_campaign_stats`: analytics.
"""

from __future__ import annotations

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
