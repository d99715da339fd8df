"""End to end: a simulated call through a real daemon (subprocess) leaves the caller's and the
agent's audio as two playable WAV files under state_dir/recordings, described by rows whose
checksum and duration match the files and which store the consent the announcement gave; with
`calls.record = false` nothing is recorded."""

from __future__ import annotations

import asyncio
import hashlib
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reautod.store.database import Database
from reautod.store.models import Recording
from tests.speech import SPEECH_DIR
from tests.store.conftest import TEST_DB_SETTINGS


async def recordings(db_path: Path) -> list[Recording]:
    db = Database(f"sqlite+aiosqlite:///{db_path}", TEST_DB_SETTINGS)
    await db.open()
    try:
        async with AsyncSession(db.engine) as session:
            return list((await session.execute(select(Recording))).scalars())
    finally:
        await db.close()


def config(state: Path, models: Path, record: bool) -> str:
    return (
        f'state_dir = "{state}"\n'
        f'[models]\ndir = "{models}"\nprofile = "test"\ndevice = "cpu"\n'
        "[http]\nport = 0\n[metrics]\nport = 0\n"
        f"[calls]\nrecord = {'true' if record else 'false'}\n"
    )


def simulated_call(daemon_factory: Any, models: Path, tmp_path: Path, *, record: bool) -> Path:
    """Start a daemon, place one simulated call, stop it (SIGTERM: the write-behind queue drains
    before exit); the daemon's state directory."""
    # real speech: the random-weight TTS voice makes noise that VAD rightly does not call speech
    lead = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
    if not lead.exists():
        pytest.skip(f"speech fixture {lead} not present")
    state = tmp_path / "state"
    daemon = daemon_factory(config(state, models, record), name="rec" if record else "norec")
    daemon.start()
    daemon.wait_ready()
    result = daemon.ctl("--json", "call", "simulate", "--fast", "--lead-audio", str(lead),
                        timeout=180)
    assert result.returncode == 0, result.stderr + daemon.log()[-3000:]
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log()[-3000:]
    return state


@pytest.mark.slow
def test_a_simulated_call_is_recorded_in_both_directions(
    daemon_factory: Any, test_models_dir: Path, tmp_path: Path
) -> None:
    state = simulated_call(daemon_factory, test_models_dir, tmp_path, record=True)
    rows = asyncio.run(recordings(state / "reautod.db"))
    assert sorted(r.direction for r in rows) == ["inbound", "outbound"], rows
    assert len({r.call_id for r in rows}) == 1
    assert not list((state / "recordings").rglob("*.partial"))
    durations = {}
    for row in rows:
        path = Path(row.path)
        assert path.is_relative_to(state / "recordings") and path.suffix == ".wav"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert len(data) == row.size_bytes
        with wave.open(str(path), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            frames = wav.getnframes()
            pcm = np.frombuffer(wav.readframes(frames), dtype=np.int16)
        assert row.duration_ms == frames * 1000 // 8000 > 1000
        assert np.abs(pcm).max() > 1000, f"{row.direction} track is silent"
        durations[row.direction] = row.duration_ms
        # the opening announced the recording and the lead went on: consent stored per file
        assert row.consent_recorded and "recording announced at" in (row.consent_detail or "")
        assert row.retention_until is not None
        assert row.retention_until - row.created_at == timedelta(days=90)
    # the agent track is padded onto the caller's timeline, so it never runs past it by much
    assert durations["outbound"] <= durations["inbound"] + 1000


@pytest.mark.slow
def test_record_false_records_nothing(
    daemon_factory: Any, test_models_dir: Path, tmp_path: Path
) -> None:
    state = simulated_call(daemon_factory, test_models_dir, tmp_path, record=False)
    assert asyncio.run(recordings(state / "reautod.db")) == []
    assert not list((state / "recordings").rglob("*.wav*"))
