"""The call recorder with a key ring: sealed files only, playable as WAV through `open_wav`,
recovered after a crash, discarded when the caller objects."""

from __future__ import annotations

import hashlib
import io
import shutil
import uuid
import wave
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from reautod.errors import PermissionDeniedError
from reautod.security.keys import KeyRing, KeyUnavailableError, generate_key_text
from reautod.security.playback import open_recording
from reautod.security.principal import Principal, Role, acting_as
from reautod.store.enums import RecordingDirection
from reautod.store.recording_files import open_wav
from reautod.store.recordings import CallRecorder, recover_partial_recordings
from reautod.store.records import RecordingFinalized
from reautod.store.repositories.recordings import RecordingRow

IN, OUT = RecordingDirection.INBOUND, RecordingDirection.OUTBOUND


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.parse(generate_key_text())


def noise(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-9000, 9000, int(seconds * 8000), dtype=np.int16).tobytes()


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def found(root: Path, pattern: str) -> list[Path]:
    return list(root.rglob(pattern))


def played(record: RecordingFinalized, keys: KeyRing | None) -> bytes:
    """The WAV playback yields, checked against the record; returns its audio frames."""
    stream = open_wav(Path(record.path), keys)
    data = b"".join(stream.chunks)
    assert len(data) == stream.size
    assert hashlib.sha256(data).hexdigest() == record.sha256
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() * 1000 // 8000 == record.duration_ms
        return w.readframes(w.getnframes())


async def test_sealed_recording_plays_back_and_holds_no_plaintext(
    keys: KeyRing, tmp_path: Path
) -> None:
    recorder = CallRecorder(tmp_path, uuid.uuid4(), sample_rate=8000, keys=keys,
                            retention=timedelta(days=30))
    await recorder.start()
    caller, agent = noise(1.0, 1), noise(0.5, 2)
    for i in range(0, len(caller), 320):
        recorder.write(IN, caller[i:i + 320])
    recorder.write(OUT, agent)
    recorder.set_consent(True, "announced; caller stayed on the line")
    records = {r.direction: r for r in await recorder.close()}

    for direction, audio in ((IN, caller), (OUT, agent)):
        record = records[direction]
        assert record.encrypted and record.path.endswith(".wav.sealed")
        assert record.consent_recorded and record.consent_detail.startswith("announced")
        assert record.retention_until == record.created_at + timedelta(days=30)
        assert played(record, keys) == audio
        raw = read(record.path)
        assert record.size_bytes == len(raw)
        assert audio[1000:1064] not in raw and b"RIFF" not in raw
    with pytest.raises(KeyUnavailableError):
        open_wav(Path(records[IN].path), None)
    assert not found(tmp_path, "*.partial")


async def test_sealed_partials_are_recovered_with_the_key(keys: KeyRing, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    call_id = uuid.uuid4()
    recorder = CallRecorder(root, call_id, sample_rate=8000, keys=keys)
    await recorder.start()
    audio = noise(0.5, 3)
    recorder.write(IN, audio)
    await recorder._flush()  # what the writer task does every half second
    crashed = tmp_path / "crashed"
    shutil.copytree(root, crashed)  # the disk as it was mid-call
    inbound = next(crashed.rglob("inbound.wav.sealed.partial"))
    with inbound.open("ab") as f:
        f.write(b"\x00\x00\x00\x30torn")
    await recorder.close()

    untouched = await recover_partial_recordings(crashed)  # no key ring: nothing is touched
    assert untouched.finalized == [] and untouched.removed == []
    assert inbound.exists()
    stranger = await recover_partial_recordings(crashed, KeyRing.parse(generate_key_text()))
    assert stranger.finalized == [] and inbound.exists()  # a key that does not open it: kept

    report = await recover_partial_recordings(crashed, keys, retention=timedelta(days=7))
    [record] = report.finalized
    assert (record.call_id, record.direction, record.encrypted) == (call_id, IN, True)
    assert record.retention_until == record.created_at + timedelta(days=7)
    assert not record.consent_recorded
    assert played(record, keys) == audio
    assert [p.name for p in report.removed] == ["outbound.wav.sealed.partial"]
    assert not list(crashed.rglob("*.partial"))


async def test_discard_leaves_nothing_behind(keys: KeyRing, tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path, uuid.uuid4(), sample_rate=8000, keys=keys)
    await recorder.start()
    recorder.write(IN, noise(0.3, 4))
    await recorder._flush()
    assert found(tmp_path, "*.partial")
    recorder.write(OUT, noise(0.1, 5))  # still buffered: never written
    await recorder.discard()
    assert not recorder.directory.exists()
    assert not found(tmp_path, "*.sealed*")


async def test_plain_recorder_discards_too(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path, uuid.uuid4(), sample_rate=8000)
    await recorder.start()
    recorder.write(IN, noise(0.1, 6))
    await recorder.discard()
    assert not found(tmp_path, "*.wav*")


async def test_playback_decrypts_for_roles_that_may_hear_recordings(
    keys: KeyRing, tmp_path: Path
) -> None:
    recorder = CallRecorder(tmp_path, uuid.uuid4(), sample_rate=8000, keys=keys)
    await recorder.start()
    audio = noise(0.2, 7)
    recorder.write(IN, audio)
    record = next(r for r in await recorder.close() if r.direction == IN)
    row = RecordingRow(record.recording_id, record.call_id, IN.value, record.path, "wav", 8000,
                       1, record.duration_ms, record.size_bytes, record.sha256, True, False,
                       None, None, "final", record.created_at)
    for role in (Role.ANALYST, Role.AUDITOR, Role.INTEGRATION):
        with acting_as(Principal("token:t", role, "api")), pytest.raises(PermissionDeniedError):
            open_recording(row, keys)
    with pytest.raises(PermissionDeniedError):
        open_recording(row, keys)  # nobody said who is asking
    with acting_as(Principal("token:o", Role.OPERATOR, "api")):
        data = b"".join(open_recording(row, keys).chunks)
    assert data[44:] == audio
