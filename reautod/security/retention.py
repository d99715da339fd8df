"""Retention per data type, enforced by a daily job (`run_daily`, started by the daemon).

| data type      | what goes                                                   | setting            |
|----------------|-------------------------------------------------------------|--------------------|
| recordings     | files and their rows (row kept as `deleted`, sha256 and all) | each row's `retention_until`; rows without one, and files no row names, after `recordings_days` |
| transcripts    | turns and agent transitions of calls older than              | `transcripts_days` |
| call metadata  | calls (events, scores, recording rows cascade), dialing attempts, blocked dials | `call_metadata_days` |
| audit          | audit entries older than (the chain is anchored, see the audit repository) | `audit_days` |
| export archives| subject-access archives under the exports directory         | `export_archives_days` |

Files go before rows, so a failure never leaves a file that nothing points to any more. Every
run is itself audited (actor `system:retention`) with what it removed. Idempotent: a second run
at the same moment removes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from reautod.config import RetentionSettings
from reautod.errors import ReautodError
from reautod.security.principal import Principal, Role
from reautod.store.database import Database
from reautod.store.recording_files import remove_recording_file
from reautod.store.repositories.audit import AuditRepository
from reautod.store.repositories.recordings import RecordingRepository
from reautod.store.repositories.retention import RetentionRepository
from reautod.store.types import utcnow

log = logging.getLogger(__name__)

RETENTION = Principal("system:retention", Role.ADMIN, "reautod retention job")


@dataclass
class RetentionReport:
    at: datetime
    recordings: int = 0
    orphan_recording_files: int = 0
    transcripts: int = 0
    call_metadata: dict[str, int] = field(default_factory=dict)
    audit_entries: int = 0
    export_archives: int = 0

    def detail(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("at")
        return data


class RetentionJob:
    def __init__(self, db: Database, settings: RetentionSettings, *, recordings_dir: Path,
                 exports_dir: Path, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.recordings_dir = recordings_dir
        self.exports_dir = exports_dir
        self.clock = clock
        self.recordings = RecordingRepository(db)
        self.rows = RetentionRepository(db)
        self.audit = AuditRepository(db, clock=clock)

    def _cutoff(self, days: int) -> datetime:
        return self.clock() - timedelta(days=days)

    async def run(self) -> RetentionReport:
        """Enforce every limit once, as of the clock's now."""
        s = self.settings
        report = RetentionReport(self.clock())
        report.recordings = await self._expired_recordings()
        report.orphan_recording_files = await self._orphan_files()
        report.transcripts = await self.rows.delete_transcripts(self._cutoff(s.transcripts_days))
        metadata_cutoff = self._cutoff(s.call_metadata_days)
        for recording_id, path in await self.rows.recordings_of_calls_before(metadata_cutoff):
            await asyncio.to_thread(remove_recording_file, self.recordings_dir, Path(path))
            await self.recordings.mark_deleted(recording_id)
            report.recordings += 1
        report.call_metadata = await self.rows.delete_calls(metadata_cutoff)
        report.export_archives = await asyncio.to_thread(
            self._old_archives, self._cutoff(s.export_archives_days))
        report.audit_entries = await self.audit.prune(self._cutoff(s.audit_days))
        await self.audit.append(RETENTION.subject, "retention.run", origin=RETENTION.origin,
                                detail=report.detail())
        log.info("retention: %d recordings, %d orphan files, %d transcript rows, %s, %d audit "
                 "entries, %d export archives removed", report.recordings,
                 report.orphan_recording_files, report.transcripts, report.call_metadata,
                 report.audit_entries, report.export_archives)
        return report

    async def _expired_recordings(self) -> int:
        removed = 0
        undated = self._cutoff(self.settings.recordings_days)
        while batch := await self.recordings.expired(self.clock(), undated_before=undated):
            for row in batch:
                await asyncio.to_thread(remove_recording_file, self.recordings_dir,
                                        Path(row.path))
                await self.recordings.mark_deleted(row.id)
            removed += len(batch)
        return removed

    async def _orphan_files(self) -> int:
        """Files in day directories older than `recordings_days` that no row names (a crash
        before the row was written, a key that was lost)."""
        cutoff = self._cutoff(self.settings.recordings_days).date()
        candidates = await asyncio.to_thread(self._files_of_days_before, cutoff)
        known = await self.recordings.known_paths(str(p) for p in candidates)
        orphans = [p for p in candidates if str(p) not in known]
        for path in orphans:
            await asyncio.to_thread(remove_recording_file, self.recordings_dir, path)
        return len(orphans)

    def _files_of_days_before(self, cutoff: date) -> list[Path]:
        if not self.recordings_dir.is_dir():
            return []
        files: list[Path] = []
        for day_dir in self.recordings_dir.iterdir():
            try:
                day = date.fromisoformat(day_dir.name)
            except ValueError:
                continue  # not one of ours
            if day < cutoff and day_dir.is_dir():
                files.extend(p for p in day_dir.glob("*/*") if p.is_file())
        return sorted(files)

    def _old_archives(self, cutoff: datetime) -> int:
        removed = 0
        if self.exports_dir.is_dir():
            for archive in self.exports_dir.glob("*.zip*"):
                if datetime.fromtimestamp(archive.stat().st_mtime, cutoff.tzinfo) < cutoff:
                    archive.unlink(missing_ok=True)
                    removed += 1
        return removed


async def run_daily(job: RetentionJob, *, first_after: timedelta = timedelta(minutes=5),
                    every: timedelta = timedelta(days=1)) -> None:
    """The daemon's task: enforce retention `first_after` start-up, then every day. A failed
    run (database down) is logged and tried again at the next turn; cancel to stop."""
    await asyncio.sleep(first_after.total_seconds())
    while True:
        try:
            await job.run()
        except (ReautodError, OSError) as err:
            log.error("retention run failed, next try in %s: %s", every, err)
        await asyncio.sleep(every.total_seconds())
