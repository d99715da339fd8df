"""Call recordings: the caller's and the agent's audio as two WAV files (16-bit PCM mono).

Layout: <state_dir>/recordings/<YYYY-MM-DD>/<call_id>/<inbound|outbound>.wav. While a call runs
the files are named `*.wav.partial`; `CallRecorder.close()` renames them and returns
`RecordingFinalized` records (sha256, duration, size) for the write-behind queue.

After a crash, `recover_partial_recordings()` finalises every partial file that holds at least
one whole sample (the wave module rewrites the header after each write, so the audio up to the
last write is intact; a torn tail is cut to whole samples and the header fixed), and removes the
ones that hold no audio or no readable header. Recovered files get the same records as a clean
close, without consent details (unknown after a crash: retention falls back to the default).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import struct
import uuid
import wave
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from reautod.errors import StoreError, ValidationError
from reautod.store.enums import RecordingDirection, RecordingFormat
from reautod.store.records import RecordingFinalized
from reautod.store.types import utcnow

log = logging.getLogger(__name__)

SAMPLE_WIDTH = 2  # bytes, 16-bit PCM
PARTIAL_SUFFIX = ".partial"
_WAV_HEADER = 44
_FLUSH_BYTES = 64 * 1024
_FLUSH_INTERVAL_S = 0.5


@dataclass
class _Track:
    path: Path
    writer: wave.Wave_write | None = None
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
    ) -> None:
        if sample_rate not in (8000, 16000, 24000, 44100, 48000):
            raise ValidationError(f"unsupported recording sample rate {sample_rate}")
        self.call_id = call_id
        self.sample_rate = sample_rate
        self.consent_recorded = consent_recorded
        self.consent_detail = consent_detail
        self.retention = retention
        self.max_buffer_bytes = max_buffer_bytes
        self.created_at = utcnow()
        directory = recordings_dir / self.created_at.strftime("%Y-%m-%d") / str(call_id)
        self.directory = directory
        self._tracks = {
            d: _Track(directory / f"{d.value}.wav{PARTIAL_SUFFIX}") for d in RecordingDirection
        }
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped_bytes = 0

    async def start(self) -> None:
        await asyncio.to_thread(self._open_files)
        self._task = asyncio.create_task(self._run(), name=f"recorder-{self.call_id}")

    def _open_files(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for track in self._tracks.values():
                w = wave.open(str(track.path), "wb")  # noqa: SIM115  (closed in _finalize)
                w.setnchannels(1)
                w.setsampwidth(SAMPLE_WIDTH)
                w.setframerate(self.sample_rate)
                w.writeframes(b"")  # header on disk now, so a crash leaves a recoverable file
                track.writer = w
        except OSError as err:
            raise StoreError(f"cannot create recording in {self.directory}: {err.strerror}") from err

    def write(self, direction: RecordingDirection, pcm: bytes) -> None:
        """Queue 16-bit mono PCM at `sample_rate` for one direction (drops, counted, when over the
        buffer bound: the audio path must never wait on the disk)."""
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
            await self._flush()

    async def _flush(self) -> None:
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
                track.writer.writeframes(data)
            except OSError as err:
                raise StoreError(f"cannot write recording {track.path}: {err.strerror}") from err
            track.frames += len(data) // SAMPLE_WIDTH

    async def close(self) -> list[RecordingFinalized]:
        """Flush, close and finalise both files; the records go to the write-behind queue."""
        if self._task is None:
            raise StoreError("the recorder was never started")
        self._closing = True
        self._wake.set()
        await self._task
        await self._flush()
        return await asyncio.to_thread(self._finalize)

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
) -> RecordingFinalized:
    """Rename `x.wav.partial` to `x.wav`, checksum it, and describe it as a record."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL_SUFFIX))
    with wave.open(str(partial), "rb") as r:
        frames, rate, channels = r.getnframes(), r.getframerate(), r.getnchannels()
    digest = hashlib.sha256()
    with partial.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
        os.fsync(f.fileno())
    os.replace(partial, final)
    return RecordingFinalized(
        recording_id=uuid.uuid4(),
        call_id=call_id,
        direction=direction,
        path=str(final),
        format=RecordingFormat.WAV,
        sample_rate=rate,
        channels=channels,
        duration_ms=frames * 1000 // rate,
        size_bytes=final.stat().st_size,
        sha256=digest.hexdigest(),
        created_at=created_at,
        consent_recorded=consent_recorded,
        consent_detail=consent_detail,
        retention_until=retention_until,
    )


@dataclass(frozen=True)
class RecoveryReport:
    finalized: list[RecordingFinalized]
    removed: list[Path]


def recover_partial_recordings_sync(recordings_dir: Path) -> RecoveryReport:
    finalized: list[RecordingFinalized] = []
    removed: list[Path] = []
    if not recordings_dir.is_dir():
        return RecoveryReport(finalized, removed)
    for partial in sorted(recordings_dir.glob(f"*/*/*.wav{PARTIAL_SUFFIX}")):
        try:
            call_id = uuid.UUID(partial.parent.name)
            direction = RecordingDirection(partial.name.removesuffix(f".wav{PARTIAL_SUFFIX}"))
        except ValueError:
            log.warning("leaving %s alone: not a recording this daemon wrote", partial)
            continue
        if _repair_header(partial):
            created = datetime.fromtimestamp(partial.stat().st_mtime).astimezone()
            finalized.append(finalize_file(partial, call_id, direction, created_at=created))
            log.warning("finalised partial recording %s after a crash", partial)
        else:
            partial.unlink(missing_ok=True)
            removed.append(partial)
            log.warning("removed partial recording %s (no audio)", partial)
    return RecoveryReport(finalized, removed)


async def recover_partial_recordings(recordings_dir: Path) -> RecoveryReport:
    """Finalise (audio present) or remove (no audio) partial recordings left by a crash."""
    return await asyncio.to_thread(recover_partial_recordings_sync, recordings_dir)


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
