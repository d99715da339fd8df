"""Subject requests under GDPR, UK GDPR and CCPA: export everything held about a phone number,
or erase it everywhere, each logged with its legal due dates (`deadlines`).

Erasure, in order, so a failure part-way leaves the person safer than before, never worse:
  1. the salted hash goes into `erased_subjects`: from now on the number is never dialed or
     imported (`ErasureRegister.is_erased`, which the dial and import paths ask);
  2. recording files of the subject's calls are deleted (the whole call directory, partial
     files included: a sealed file's data key is wrapped inside it, so it goes with it);
  3. the rows, table by table in one transaction (`PrivacyRepository.erase`);
  4. every other holder (`SubjectDataHolder`: live sessions in Redis, caches, ...) forgets it;
  5. earlier export archives of the subject are deleted;
  6. the request is closed with a receipt that names no one (counts, the hash, and the Twilio
     call SIDs a CCPA deletion must be passed on to).
Running it again finishes an erasure that failed part-way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from reautod.errors import ReautodError, ValidationError
from reautod.security.deadlines import Deadlines, deadlines
from reautod.security.export_archive import write_archive
from reautod.security.keys import KeyRing
from reautod.security.playback import open_recording
from reautod.security.principal import Permission, require
from reautod.security.results import (
    Deadline,
    ErasureReceipt,
    ExportResult,
    PrivacyRequestView,
)
from reautod.security.subjects import ErasureRegister
from reautod.sessions import SessionStore
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import PrivacyRegime, PrivacyRequestKind, PrivacyRequestStatus
from reautod.store.recording_files import WavStream, remove_recording_file
from reautod.store.repositories.privacy import PrivacyRepository, PrivacyRequestRow, SubjectRows
from reautod.store.repositories.recordings import RecordingRow
from reautod.store.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    """Whom a request is about, as the other holders need it."""

    phone: str
    subject_hash: str
    contact_ids: frozenset[uuid.UUID]
    call_ids: frozenset[uuid.UUID]


class SubjectDataHolder(Protocol):
    """A part that keeps personal data outside the database (caches, live sessions, exports)."""

    name: str

    async def export(self, subject: Subject) -> list[dict[str, Any]]:
        """What it holds about the subject, JSON-ready."""
        ...

    async def erase(self, subject: Subject) -> int:
        """Forget the subject; how many items went."""
        ...


class SessionSnapshots:
    """Live-call snapshots in the session store (Redis, or in-process) of the subject's calls."""

    name = "live_sessions"

    def __init__(self, sessions: SessionStore) -> None:
        self._sessions = sessions

    async def _matching(self, subject: Subject) -> dict[str, dict[str, Any]]:
        return {key: snapshot for key, snapshot in (await self._sessions.all()).items()
                if call_uuid(key) in subject.call_ids
                or subject.phone in json.dumps(snapshot, default=str)}

    async def export(self, subject: Subject) -> list[dict[str, Any]]:
        return [{"session": k, "snapshot": v} for k, v in (await self._matching(subject)).items()]

    async def erase(self, subject: Subject) -> int:
        found = await self._matching(subject)
        for key in found:
            await self._sessions.delete(key)
        return len(found)


def _deadline(regime: PrivacyRegime, received: datetime, due: Deadlines) -> Deadline:
    return Deadline(regime=regime, received_at=received, acknowledge_by=due.acknowledge_by,
                    due_at=due.due_at)


class PrivacyService:
    """Export and erasure of one subject; every entry point checks the caller's permission."""

    def __init__(
        self,
        db: Database,
        register: ErasureRegister,
        *,
        recordings_dir: Path,
        exports_dir: Path,
        keys: KeyRing | None,
        holders: Sequence[SubjectDataHolder] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repo = PrivacyRepository(db)
        self.register = register
        self.recordings_dir = recordings_dir
        self.exports_dir = exports_dir
        self.keys = keys
        self.holders = list(holders)
        self.clock = clock

    def _open_recording(self, row: RecordingRow) -> WavStream:
        return open_recording(row, self.keys)

    async def _open(self, kind: PrivacyRequestKind, phone: str, regime: PrivacyRegime,
                    received_at: datetime | None) -> tuple[uuid.UUID, str, Deadline]:
        principal = require(Permission.PRIVACY)
        received = received_at or self.clock()
        if received > self.clock():
            raise ValidationError("a request cannot be received in the future")
        subject_hash = self.register.hasher.hash(phone)
        due = deadlines(regime, received)
        request_id = await self.repo.open_request(kind, regime, subject_hash, principal.subject,
                                                  received, due.acknowledge_by, due.due_at)
        return request_id, subject_hash, _deadline(regime, received, due)

    async def _fail(self, request_id: uuid.UUID, err: ReautodError) -> None:
        await self.repo.close_request(request_id, PrivacyRequestStatus.FAILED, self.clock(),
                                      {"error": err.code, "message": err.message})

    def _subject(self, rows: SubjectRows, subject_hash: str) -> Subject:
        return Subject(rows.scope.phone, subject_hash, rows.scope.contact_ids,
                       rows.scope.call_ids)

    async def export(self, phone: str, regime: PrivacyRegime = PrivacyRegime.GDPR,
                     received_at: datetime | None = None) -> ExportResult:
        """Everything held about `phone` as a zip under the exports directory."""
        request_id, subject_hash, deadline = await self._open(
            PrivacyRequestKind.EXPORT, phone, regime, received_at)
        try:
            rows = await self.repo.collect(phone, subject_hash)
            subject = self._subject(rows, subject_hash)
            held = {h.name: await h.export(subject) for h in self.holders}
            manifest = {
                "request_id": str(request_id), "regime": regime.value, "phone": phone,
                "generated_at": self.clock().isoformat(), "tables": rows.tables,
                "other_holders": held,
                "erased": await self.register.is_erased(phone),
            }
            path = self.exports_dir / f"{request_id}.zip"
            summary = await asyncio.to_thread(write_archive, path, manifest, rows.recordings,
                                              self._open_recording)
        except ReautodError as err:
            await self._fail(request_id, err)
            raise
        counts = {name: len(table) for name, table in rows.tables.items()}
        done = self.clock()
        receipt = ExportResult(
            request_id=request_id, deadline=deadline, completed_at=done, path=str(path),
            size_bytes=summary.size_bytes, sha256=summary.sha256, rows=counts,
            recordings=summary.recordings_included,
            recordings_unreadable=summary.recordings_unreadable)
        await self.repo.close_request(request_id, PrivacyRequestStatus.COMPLETED, done,
                                      receipt.model_dump(mode="json"))
        log.info("privacy export %s done: %d rows, %d recordings", request_id,
                 sum(counts.values()), summary.recordings_included)
        return receipt

    async def erase(self, phone: str, regime: PrivacyRegime = PrivacyRegime.GDPR,
                    received_at: datetime | None = None) -> ErasureReceipt:
        """Remove everything held about `phone`, keeping only its salted hash."""
        request_id, subject_hash, deadline = await self._open(
            PrivacyRequestKind.ERASE, phone, regime, received_at)
        try:
            await self.repo.record_erasure(subject_hash, self.register.hasher.salt_id,
                                           request_id, self.clock())
            rows = await self.repo.collect(phone, subject_hash)
            files = await asyncio.to_thread(self._remove_call_audio, rows)
            removed = await self.repo.erase(rows.scope, subject_hash)
            subject = self._subject(rows, subject_hash)
            others = {h.name: await h.erase(subject) for h in self.holders}
            archives = await asyncio.to_thread(self._remove_exports, rows)
        except ReautodError as err:
            await self._fail(request_id, err)
            raise
        done = self.clock()
        receipt = ErasureReceipt(
            request_id=request_id, subject_hash=subject_hash, deadline=deadline,
            completed_at=done, rows_removed=removed, recording_files_removed=files,
            export_archives_removed=archives, other_holders=others,
            processors_to_notify={"twilio": rows.call_sids} if rows.call_sids else {})
        await self.repo.close_request(request_id, PrivacyRequestStatus.COMPLETED, done,
                                      receipt.model_dump(mode="json"))
        log.info("privacy erasure %s done: %d rows, %d recording files", request_id,
                 sum(removed.values()), files)
        return receipt

    def _remove_call_audio(self, rows: SubjectRows) -> int:
        """Every file of the subject's calls: the rows' paths and whatever else sits in those
        calls' directories (partial files of a crash, files whose row never got written)."""
        paths = {Path(r.path) for r in rows.recordings}
        for call_id in rows.scope.call_ids:
            paths.update(p for d in self.recordings_dir.glob(f"*/{call_id}") if d.is_dir()
                         for p in d.iterdir() if p.is_file())
        removed = 0
        for path in sorted(paths):
            existed = path.exists()
            remove_recording_file(self.recordings_dir, path)
            removed += existed
        return removed

    def _remove_exports(self, rows: SubjectRows) -> int:
        removed = 0
        for request in rows.tables["privacy_requests"]:
            if request["kind"] == PrivacyRequestKind.EXPORT.value:
                archive = self.exports_dir / f"{request['id']}.zip"
                if archive.exists():
                    archive.unlink()
                    removed += 1
        return removed

    async def requests(self, *, open_only: bool = False,
                       limit: int = 200) -> list[PrivacyRequestView]:
        require(Permission.PRIVACY)
        now = self.clock()
        return [_view(r, now) for r in await self.repo.requests(open_only=open_only,
                                                               limit=limit)]

    async def is_erased(self, phone: str) -> bool:
        require(Permission.PRIVACY)
        return await self.register.is_erased(phone)


def _view(row: PrivacyRequestRow, now: datetime) -> PrivacyRequestView:
    deadline = Deadline(regime=PrivacyRegime(row.regime), received_at=row.received_at,
                        acknowledge_by=row.acknowledge_by, due_at=row.due_at)
    return PrivacyRequestView(
        request_id=row.id, kind=row.kind, subject_hash=row.subject_hash, actor=row.actor,
        deadline=deadline, status=row.status, completed_at=row.completed_at,
        overdue=row.status == PrivacyRequestStatus.OPEN.value and row.due_at < now)
