"""The security part as the daemon builds it: keys, the erasure register, the audit trail,
subject requests and the retention job, from the credentials and settings, in one place."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from reautod.methods import Method
from reautod.security.audit import AuditTrail
from reautod.security.control import security_methods
from reautod.security.keys import KeyRing
from reautod.security.playback import open_recording
from reautod.security.privacy import PrivacyService, SessionSnapshots, SubjectDataHolder
from reautod.security.retention import RetentionJob, RetentionSettings, run_daily
from reautod.security.subjects import ErasureRegister, SubjectHasher, load_salt
from reautod.sessions import SessionStore
from reautod.store.database import Database
from reautod.store.recording_files import WavStream
from reautod.store.repositories.audit import AuditRepository
from reautod.store.repositories.recordings import RecordingRepository, RecordingRow
from reautod.store.types import utcnow


class SecurityPart:
    """Built after the database and the session store; `start()` before taking requests."""

    def __init__(
        self,
        db: Database,
        sessions: SessionStore,
        *,
        state_dir: Path,
        keys: KeyRing | None,
        erasure_salt: str | None,
        retention: RetentionSettings,
        holders: tuple[SubjectDataHolder, ...] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.recordings_dir = state_dir / "recordings"
        self.exports_dir = state_dir / "privacy" / "exports"
        # None: no encryption_key credential; recordings cannot be sealed or opened
        self.keys = keys
        self.db = db
        self.register = ErasureRegister(db, SubjectHasher(load_salt(state_dir, erasure_salt)))
        self.audit_log = AuditRepository(db, clock=clock)
        self.audit = AuditTrail(self.audit_log)
        self.privacy = PrivacyService(
            db, self.register, recordings_dir=self.recordings_dir, exports_dir=self.exports_dir,
            keys=self.keys, holders=(SessionSnapshots(sessions), *holders), clock=clock)
        self.retention = RetentionJob(db, retention, recordings_dir=self.recordings_dir,
                                      exports_dir=self.exports_dir, clock=clock)

    async def start(self) -> None:
        """Refuse to run with an erasure salt other than the one erasures were recorded with."""
        await self.register.check_salt()

    def open_recording(self, row: RecordingRow) -> WavStream:
        """Playback and export: the recording as WAV, for callers who may hear recordings."""
        return open_recording(row, self.keys)

    def control_methods(self) -> list[Method]:
        return security_methods(self.privacy, self.audit_log, recordings_dir=self.recordings_dir,
                                keys=self.keys, recordings=RecordingRepository(self.db))

    def retention_task(self) -> Coroutine[Any, Any, None]:
        """The daily retention job, for the daemon to run as a task (cancel it to stop)."""
        return run_daily(self.retention)
