"""The security part as the daemon builds it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reautod.errors import ConfigError
from reautod.security.keys import generate_key_text, load_key_ring
from reautod.security.part import SecurityPart
from reautod.security.playback import read_range
from reautod.security.principal import Principal, Role, acting_as
from reautod.security.retention import RetentionSettings
from reautod.sessions import MemorySessionStore
from reautod.store.database import Database
from reautod.store.recording_files import WavStream
from reautod.store.repositories.recordings import RecordingRepository
from tests.security.people import ALICE, person


async def test_the_part_serves_its_methods_and_plays_recordings(
    db: Database, tmp_path: Path
) -> None:
    keys = load_key_ring(generate_key_text())
    part = SecurityPart(db, MemorySessionStore(), state_dir=tmp_path, keys=keys,
                        erasure_salt=None, retention=RetentionSettings())
    await part.start()
    assert {m.name for m in part.control_methods()} == {
        "privacy.export", "privacy.erase", "privacy.requests", "privacy.check", "audit.list",
        "audit.verify", "keys.status", "keys.rotate", "call.audio"}
    alice = await person(db, part.recordings_dir, keys, ALICE, "Alice", 1)
    [row, _] = await RecordingRepository(db).for_call(alice.call_ids[0])
    with acting_as(Principal("token:o", Role.OPERATOR, "api")):
        wav = b"".join(part.open_recording(row).chunks)
    assert wav[44:] == alice.audio
    task = asyncio.create_task(part.retention_task())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # a second box with another salt on the same database is refused at start
    with acting_as(Principal("uid:0", Role.ADMIN, "test")):
        await part.privacy.erase(ALICE)
    other = SecurityPart(db, MemorySessionStore(), state_dir=tmp_path / "other", keys=keys,
                         erasure_salt=None, retention=RetentionSettings())
    with pytest.raises(ConfigError):
        await other.start()


def test_read_range_crosses_chunks() -> None:
    data = bytes(range(256)) * 4

    def stream() -> WavStream:
        return WavStream(True, 8000, 1, 0, len(data),
                         iter([data[i:i + 100] for i in range(0, len(data), 100)]))

    for offset, length in ((0, 1024), (0, 5000), (50, 100), (99, 2), (1000, 100), (1024, 10)):
        assert read_range(stream(), offset, length) == data[offset:offset + length]
