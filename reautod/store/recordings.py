"""Call recordings: the caller's and the agent's audio as two files (16-bit PCM mono).

Layout: <state_dir>/recordings/<YYYY-MM-DD>/<call_id>/<inbound|outbound>.wav.sealed. With a key
ring (`reautod.security.keys`) every file is sealed: encrypted chunk by chunk as it is written
(`reautod.security.sealed_audio`), so no plaintext audio ever reaches the disk; playback and
export decrypt into a WAV stream (`recording_files.open_wav`). Without a key ring the files are
plain WAV (`*.wav`, `encrypted` false), for development set-ups only.
Encrypting as written was chosen over encrypting at the end of the call because a plaintext file
cannot be reliably erased afterwards (journaling and copy-on-write file systems, SSD wear
levelling keep old blocks), and a crash mid-call would leave plaintext behind.

While a call runs the files are named `*.partial`; `CallRecorder.close()` renames them and
returns `RecordingFinalized` records for the write-behind queue. `sha256` and `duration_ms`
describe the WAV that playback yields (for a plain file, the file itself), so they survive a
key rotation, which rewrites only the sealed file's key slots.

After a crash, `recover_partial_recordings()` finalises every partial file that holds audio (a
sealed file keeps its whole chunks and gets its end marker; a plain one has its header fixed and
a torn tail cut to whole samples) and removes the ones with no audio or no readable header.
Recovered files get the same records as a clean close; their consent is unknown (not recorded)
and their retention runs from the file's time. `CallRecorder.discard()` removes a recording
the caller objected to (a sealed file is useless without its wrapped key, which goes with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import struct
import uuid
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from reautod.errors import StoreError, ValidationError
from reautod.security import sealed_audio
from reautod.security.keys import KeyRing, KeyUnavailableError
from reautod.store.enums import RecordingDirection, RecordingFormat
from reautod.store.recording_files import PARTIAL_SUFFIX, SEALED_SUFFIX, is_sealed, open_wav
from reautod.store.records import RecordingFinalized
from reautod.store.types import utcnow

log = logging.getLogger(__name__)

SAMPLE_WIDTH = 2  # bytes, 16-bit PCM
_WAV_HEADER = 44
_FLUSH_BYTES = 64 * 1024
_FLUSH_INTERVAL_S = 0.5


class _TrackWriter(Protocol):
    def write(self, pcm: bytes) -> None: ...
    def close(self) -> None: ...
    def abandon(self) -> None: ...


class _PlainWriter:
    """A plain WAV file; the wave module patches the header after each write."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115  (closed in close/abandon)
        self._wav.setnchannels(1)
        self._wav.setsampwidth(SAMPLE_WIDTH)
        self._wav.setframerate(sample_rate)
        self._wav.writeframes(b"")  # header on disk now, so a crash leaves a recoverable file

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)

    def close(self) -> None:
        self._wav.close()

    abandon = close


def write_failure_code(err: OSError) -> str:
    """`disk_full` when the file system is out of space or quota, else `store_failed`."""
    return "disk_full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else StoreError.code


@dataclass
class _Track:
    path: Path
    writer: _TrackWriter | None = None
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    frames: int = 0


class CallRecorder:
    """Records one call; `write` never blocks (buffers), a task of its own writes off the loop."""

    def __init__(
        self,
        recordings_dir: Path,
        call_id: uuid.UUID,
        *,
        sample_rate: int,
        consent_recorded: bool = False,
        consent_detail: str | None = None,
        retention: timedelta | None = None,
        max_buffer_bytes: int = 8 * 1024 * 1024,
        keys: KeyRing | None = None,
    ) -> None:
        if sample_rate not in (8000, 16000, 24000, 44100, 48000):
            raise ValidationError(f"unsupported recording sample rate {sample_rate}")
        self.call_id = call_id
        self.sample_rate = sample_rate
        self.consent_recorded = consent_recorded
        self.consent_detail = consent_detail
        self.retention = retention
        self.max_buffer_bytes = max_buffer_bytes
        self.keys = keys
        self.created_at = utcnow()
        directory = recordings_dir / self.created_at.strftime("%Y-%m-%d") / str(call_id)
        self.directory = directory
        suffix = ".wav" + (SEALED_SUFFIX if keys is not None else "") + PARTIAL_SUFFIX
        self._tracks = {d: _Track(directory / f"{d.value}{suffix}") for d in RecordingDirection}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped_bytes = 0
        self.failure: StoreError | None = None  # a write failed (disk full): recording stopped

    async def start(self) -> None:
        await asyncio.to_thread(self._open_files)
        self._task = asyncio.create_task(self._run(), name=f"recorder-{self.call_id}")

    def _open_files(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            for track in self._tracks.values():
                track.writer = (
                    sealed_audio.SealedWriter(track.path, self.keys,
                                              sealed_audio.AudioFormat(self.sample_rate))
                    if self.keys is not None else _PlainWriter(track.path, self.sample_rate)
                )
        except OSError as err:
            raise StoreError(f"cannot create recording in {self.directory}: {err.strerror}",
                             code=write_failure_code(err)) from err

    def set_consent(self, recorded: bool, detail: str) -> None:
        """What the call established about consent to record (stored with each file's row)."""
        self.consent_recorded = recorded
        self.consent_detail = detail

    def write(self, direction: RecordingDirection, pcm: bytes) -> None:
        """Queue 16-bit mono PCM at `sample_rate` for one direction (drops, counted, when over the
        buffer bound: the audio path must never wait on the disk)."""
        if self.failure is not None:
            raise StoreError(f"recording stopped: {self.failure.message}", code=self.failure.code)
        if self._task is None or self._closing:
            raise StoreError("the recorder is not running")
        if len(pcm) % SAMPLE_WIDTH:
            raise ValidationError("PCM chunk is not a whole number of 16-bit samples")
        track = self._tracks[direction]
        if sum(t.pending_bytes for t in self._tracks.values()) + len(pcm) > self.max_buffer_bytes:
            self.dropped_bytes += len(pcm)
            return
        track.pending.append(pcm)
        track.pending_bytes += len(pcm)
        if track.pending_bytes >= _FLUSH_BYTES:
            self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _FLUSH_INTERVAL_S)
            self._wake.clear()
            try:
                await self._flush()
            except StoreError as err:
                # what reached the disk stays (finalised at close); the next `write` says why
                self.failure = err
                return

    async def _flush(self) -> None:
        if self.failure is not None:
            return
        batches = []
        for track in self._tracks.values():
            if track.pending:
                batches.append((track, b"".join(track.pending)))
                track.pending.clear()
                track.pending_bytes = 0
        if batches:
            await asyncio.to_thread(self._write_batches, batches)

    @staticmethod
    def _write_batches(batches: list[tuple[_Track, bytes]]) -> None:
        for track, data in batches:
            if track.writer is None:
                continue
            try:
                track.writer.write(data)
            except OSError as err:
                raise StoreError(f"cannot write recording {track.path}: {err.strerror}",
                                 code=write_failure_code(err)) from err
            track.frames += len(data) // SAMPLE_WIDTH

    async def close(self) -> list[RecordingFinalized]:
        """Flush, close and finalise both files; the records go to the write-behind queue."""
        if self._task is None:
            raise StoreError("the recorder was never started")
        self._closing = True
        self._wake.set()
        await self._task
        if self.failure is not None:
            # what reached the disk stays as partial files: the next start finalises them
            await asyncio.to_thread(self._abandon_writers)
            raise StoreError(f"recording not finalised: {self.failure.message}",
                             code=self.failure.code)
        await self._flush()
        return await asyncio.to_thread(self._finalize)

    def _abandon_writers(self) -> None:
        for track in self._tracks.values():
            if track.writer is not None:
                with contextlib.suppress(OSError):
                    track.writer.abandon()
                track.writer = None

    async def discard(self) -> None:
        """Stop recording and delete what was recorded (the caller objected); no rows result."""
        if self._task is None:
            raise StoreError("the recorder was never started")
        self._closing = True
        self._wake.set()
        with contextlib.suppress(StoreError):
            await self._task  # a failed write changes nothing: the files go anyway
        for track in self._tracks.values():
            track.pending.clear()
            track.pending_bytes = 0
        await asyncio.to_thread(self._remove_files)

    def _remove_files(self) -> None:
        for track in self._tracks.values():
            if track.writer is not None:
                track.writer.abandon()
                track.writer = None
            track.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # only when empty

    def _finalize(self) -> list[RecordingFinalized]:
        out = []
        for direction, track in self._tracks.items():
            if track.writer is not None:
                track.writer.close()
                track.writer = None
            out.append(
                finalize_file(
                    track.path,
                    self.call_id,
                    direction,
                    created_at=self.created_at,
                    consent_recorded=self.consent_recorded,
                    consent_detail=self.consent_detail,
                    retention_until=self.created_at + self.retention if self.retention else None,
                    keys=self.keys,
                )
            )
        return out


def finalize_file(
    partial: Path,
    call_id: uuid.UUID,
    direction: RecordingDirection,
    *,
    created_at: datetime,
    consent_recorded: bool = False,
    consent_detail: str | None = None,
    retention_until: datetime | None = None,
    keys: KeyRing | None = None,
) -> RecordingFinalized:
    """Rename `x.partial` to `x`, checksum its WAV, and describe it as a record."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX))
    wav = open_wav(partial, keys)
    digest = hashlib.sha256()
    for chunk in wav.chunks:
        digest.update(chunk)
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, final)
    return RecordingFinalized(
        recording_id=uuid.uuid4(),
        call_id=call_id,
        direction=direction,
        path=str(final),
        format=RecordingFormat.WAV,
        sample_rate=wav.sample_rate,
        channels=wav.channels,
        duration_ms=wav.frames * 1000 // wav.sample_rate,
        size_bytes=final.stat().st_size,
        sha256=digest.hexdigest(),
        created_at=created_at,
        consent_recorded=consent_recorded,
        consent_detail=consent_detail,
        retention_until=retention_until,
        encrypted=wav.sealed,
    )


@dataclass(frozen=True)
class RecoveryReport:
    finalized: list[RecordingFinalized]
    removed: list[Path]


def recover_partial_recordings_sync(
    recordings_dir: Path, keys: KeyRing | None = None, retention: timedelta | None = None
) -> RecoveryReport:
    finalized: list[RecordingFinalized] = []
    removed: list[Path] = []
    if not recordings_dir.is_dir():
        return RecoveryReport(finalized, removed)
    for partial in sorted(recordings_dir.glob(f"*/*/*.wav*{PARTIAL_SUFFIX}")):
        name = partial.name.removesuffix(PARTIAL_SUFFIX).removesuffix(SEALED_SUFFIX)
        try:
            call_id = uuid.UUID(partial.parent.name)
            direction = RecordingDirection(name.removesuffix(".wav"))
        except ValueError:
            log.warning("leaving %s alone: not a recording this daemon wrote", partial)
            continue
        if is_sealed(partial) and keys is None:
            log.warning("leaving %s alone: it is encrypted and no key ring is loaded", partial)
            continue
        try:
            has_audio = (sealed_audio.repair(partial, keys) is not None if keys is not None
                         and is_sealed(partial) else _repair_header(partial))
        except KeyUnavailableError as err:
            log.warning("leaving %s alone: %s", partial, err.message)
            continue
        if has_audio:
            created = datetime.fromtimestamp(partial.stat().st_mtime, UTC)
            finalized.append(finalize_file(
                partial, call_id, direction, created_at=created, keys=keys,
                consent_detail="unknown: the daemon stopped during the call",
                retention_until=created + retention if retention else None))
            log.warning("finalised partial recording %s after a crash", partial)
        else:
            partial.unlink(missing_ok=True)
            removed.append(partial)
            log.warning("removed partial recording %s (no audio)", partial)
    return RecoveryReport(finalized, removed)


async def recover_partial_recordings(
    recordings_dir: Path, keys: KeyRing | None = None, retention: timedelta | None = None
) -> RecoveryReport:
    """Finalise (audio present) or remove (no audio) partial recordings left by a crash; sealed
    ones need the key ring (without it they are left for a start that has it)."""
    return await asyncio.to_thread(recover_partial_recordings_sync, recordings_dir, keys,
                                   retention)


def _repair_header(path: Path) -> bool:
    """Make the RIFF/data sizes match the whole samples on disk; False if there is no audio."""
    with path.open("r+b") as f:
        header = f.read(_WAV_HEADER)
        if (
            len(header) < _WAV_HEADER
            or header[0:4] != b"RIFF"
            or header[8:12] != b"WAVE"
            or header[36:40] != b"data"
        ):
            return False
        channels, _rate, _byte_rate, block_align = struct.unpack("<HIIH", header[22:34])
        if channels < 1 or block_align < 1:
            return False
        size = f.seek(0, os.SEEK_END)
        data = (size - _WAV_HEADER) // block_align * block_align
        if data <= 0:
            return False
        f.truncate(_WAV_HEADER + data)
        f.seek(4)
        f.write(struct.pack("<I", 36 + data))
        f.seek(40)
        f.write(struct.pack("<I", data))
        f.flush()
        os.fsync(f.fileno())
    return True
