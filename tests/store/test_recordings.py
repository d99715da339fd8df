"""Recordings: two playable WAV files per call, checksummed into the database; crash leftovers
are finalised (audio present) or removed (none)."""

from __future__ import annotations

import hashlib
import math
import shutil
import struct
import uuid
import wave
from pathlib import Path

import pytest

from reautod.errors import StoreError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import RecordingDirection
from reautod.store.recordings import CallRecorder, recover_partial_recordings
from reautod.store.records import RecordingFinalized
from reautod.store.repositories import CallRepository
from tests.store.factories import call_started


def tone(seconds: float, rate: int, freq: float = 440.0) -> bytes:
    n = int(seconds * rate)
    return struct.pack(
        f"<{n}h", *(int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )


def check_wav(record: RecordingFinalized, pcm: bytes) -> None:
    """The file plays as 8 kHz 16-bit mono, holds exactly `pcm`, and matches its record."""
    path = Path(record.path)
    assert path.suffix == ".wav"
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.readframes(w.getnframes()) == pcm
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record.size_bytes == path.stat().st_size


async def test_recorder_writes_both_directions_and_records_them(
    db: Database, tmp_path: Path
) -> None:
    start = call_started()
    await CallRepository(db).write([start])
    recorder = CallRecorder(
        tmp_path / "recordings",
        start.call_id,
        sample_rate=8000,
        consent_recorded=True,
        consent_detail="greeting disclosed recording",
    )
    await recorder.start()
    caller = tone(1.5, 8000, 300)
    agent = tone(0.75, 8000, 600)
    for i in range(0, len(caller), 320):  # 20 ms frames, as the pipeline delivers them
        recorder.write(RecordingDirection.INBOUND, caller[i : i + 320])
    recorder.write(RecordingDirection.OUTBOUND, agent)
    with pytest.raises(ValidationError):
        recorder.write(RecordingDirection.OUTBOUND, b"\x00")
    records = await recorder.close()

    by_dir = {r.direction: r for r in records}
    assert by_dir[RecordingDirection.INBOUND].duration_ms == 1500
    assert by_dir[RecordingDirection.OUTBOUND].duration_ms == 750
    for record, pcm in (
        (by_dir[RecordingDirection.INBOUND], caller),
        (by_dir[RecordingDirection.OUTBOUND], agent),
    ):
        assert str(start.call_id) in record.path
        check_wav(record, pcm)
    assert not list((tmp_path / "recordings").rglob("*.partial"))

    await CallRepository(db).write(records)
    await CallRepository(db).write(records)  # idempotent on (call, direction)

    async def rows(conn: object) -> list[tuple[str, int, bool]]:
        from sqlalchemy import select

        t = m.Recording.__table__
        result = await conn.execute(  # type: ignore[attr-defined]
            select(t.c.direction, t.c.duration_ms, t.c.consent_recorded).order_by(t.c.direction)
        )
        return [tuple(r) for r in result]

    assert await db.read(rows) == [("inbound", 1500, True), ("outbound", 750, True)]
    with pytest.raises(StoreError):
        recorder.write(RecordingDirection.INBOUND, b"\x00\x00")


async def test_crash_leftovers_are_finalised_or_removed(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    call_id = uuid.uuid4()
    recorder = CallRecorder(root, call_id, sample_rate=16000)
    await recorder.start()
    audio = tone(0.5, 16000)
    recorder.write(RecordingDirection.INBOUND, audio)
    await recorder._flush()  # what the writer task does every half second
    # Simulate a crash: copy the files as they are on disk mid-call, with a torn last write.
    crashed = tmp_path / "crashed"
    shutil.copytree(root, crashed)
    inbound = next(crashed.rglob("inbound.wav.partial"))
    with inbound.open("ab") as f:
        f.write(b"\x01\x02\x03")  # half-written samples after the header was last patched
    await recorder.close()

    report = await recover_partial_recordings(crashed)
    assert [r.direction for r in report.finalized] == [RecordingDirection.INBOUND]
    [record] = report.finalized
    assert record.call_id == call_id
    assert record.duration_ms == 500  # a torn half sample is cut off
    with wave.open(record.path, "rb") as w:
        assert w.readframes(w.getnframes())[: len(audio)] == audio
        assert w.getnframes() == len(audio) // 2 + 1  # one whole torn-in sample kept
    assert [p.name for p in report.removed] == ["outbound.wav.partial"]  # header only: no audio
    assert not list(crashed.rglob("*.partial"))
    assert (await recover_partial_recordings(crashed)).finalized == []
    assert (await recover_partial_recordings(tmp_path / "missing")).removed == []


def test_unsupported_sample_rate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        CallRecorder(tmp_path, uuid.uuid4(), sample_rate=12345)
