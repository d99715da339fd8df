"""Control-socket methods of the security part: subject requests, the audit log, master keys.

Each handler checks the caller's permission itself (`require`), so the methods are safe on any
transport that sets the caller (`acting_as`). The state-changing ones say so (`changes_state`):
the transport audits them (`AuditTrail.run_method`).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from reautod.errors import NotFoundError, UnavailableError, ValidationError
from reautod.methods import Method, NoParams
from reautod.security.keys import KeyRing
from reautod.security.playback import open_recording, read_range
from reautod.security.principal import Permission, require
from reautod.security.privacy import PrivacyService
from reautod.security.results import (
    AudioChunk,
    AudioParams,
    AuditEntryView,
    AuditList,
    AuditListParams,
    ChainVerdict,
    EraseParams,
    ErasureReceipt,
    ErasureStatus,
    ExportResult,
    KeyStatus,
    PrivacyRequestList,
    RequestListParams,
    RotationReport,
    SubjectParams,
    SubjectRequestParams,
)
from reautod.security.rotation import key_status, rotate
from reautod.store.call_observer import call_uuid
from reautod.store.repositories.audit import AuditRepository
from reautod.store.repositories.recordings import RecordingRepository


def security_methods(privacy: PrivacyService, audit: AuditRepository, *,
                     recordings_dir: Path, keys: KeyRing | None,
                     recordings: RecordingRepository) -> list[Method]:
    async def export(params: SubjectRequestParams) -> ExportResult:
        return await privacy.export(params.number, params.regime, params.received_at)

    async def erase(params: EraseParams) -> ErasureReceipt:
        if not params.confirm:
            raise ValidationError("erasure cannot be undone: pass confirm=true")
        return await privacy.erase(params.number, params.regime, params.received_at)

    async def requests(params: RequestListParams) -> PrivacyRequestList:
        views = await privacy.requests(open_only=params.open_only, limit=params.limit)
        return PrivacyRequestList(requests=views)

    async def check(params: SubjectParams) -> ErasureStatus:
        return ErasureStatus(erased=await privacy.is_erased(params.number))

    async def audit_list(params: AuditListParams) -> AuditList:
        require(Permission.AUDIT)
        rows = await audit.recent(params.limit, since=params.since)
        entries = [AuditEntryView(id=r.id, at=r.at, actor=r.actor, origin=r.origin,
                                  action=r.action, outcome=r.outcome, target_type=r.target_type,
                                  target_id=r.target_id, detail=r.detail) for r in rows]
        return AuditList(entries=entries)

    async def audit_verify(_params: NoParams) -> ChainVerdict:
        require(Permission.AUDIT)
        report = await audit.verify()
        return ChainVerdict(ok=report.ok, entries=report.entries, head_hash=report.head_hash,
                            starts_after=report.starts_after, first_bad_id=report.first_bad_id,
                            problem=report.problem)

    async def call_audio(params: AudioParams) -> AudioChunk:
        require(Permission.RECORDINGS)
        rows = await recordings.for_call(call_uuid(params.call_id))
        row = next((r for r in rows if r.direction == params.direction), None)
        if row is None:
            raise NotFoundError(f"no {params.direction} recording of call {params.call_id}")

        def read() -> tuple[int, bytes]:
            try:
                stream = open_recording(row, keys)
            except FileNotFoundError as err:
                raise NotFoundError(f"the {row.direction} recording of call {params.call_id} "
                                    f"is gone ({row.status})") from err
            return stream.size, read_range(stream, params.offset, params.length)

        size, data = await asyncio.to_thread(read)
        return AudioChunk(call_id=params.call_id, direction=row.direction, size=size,
                          offset=params.offset, data=base64.b64encode(data).decode("ascii"),
                          sha256=row.sha256)

    def ring() -> KeyRing:
        require(Permission.KEYS)
        if keys is None:
            raise UnavailableError("no encryption key is configured: set the encryption_key "
                                   "credential (reautoctl keys generate makes one)")
        return keys

    async def keys_status(_params: NoParams) -> KeyStatus:
        return await asyncio.to_thread(key_status, recordings_dir, ring())

    async def keys_rotate(_params: NoParams) -> RotationReport:
        return await asyncio.to_thread(rotate, recordings_dir, ring())

    return [
        Method("privacy.export", export, SubjectRequestParams, changes_state=True,
               summary="export everything held about a phone number (zip of JSON and audio)"),
        Method("privacy.erase", erase, EraseParams, changes_state=True,
               summary="erase a phone number everywhere, keeping only its salted hash"),
        Method("privacy.requests", requests, RequestListParams,
               summary="subject requests with their legal due dates"),
        Method("privacy.check", check, SubjectParams,
               summary="whether a phone number was erased (never dialed or imported)"),
        Method("call.audio", call_audio, AudioParams,
               summary="a call's recording as WAV (decrypted), a range of bytes at a time"),
        Method("audit.list", audit_list, AuditListParams,
               summary="audit log entries, newest first"),
        Method("audit.verify", audit_verify, NoParams,
               summary="walk the audit log's hash chain; the first entry that does not fit"),
        Method("keys.status", keys_status, NoParams,
               summary="master keys and which one wraps each recording"),
        Method("keys.rotate", keys_rotate, NoParams, changes_state=True,
               summary="re-wrap every recording's data key under the current master key"),
    ]
