"""End to end: a simulated call through a real daemon (subprocess) is in the database, and it
is still there, unchanged, after the daemon stops and a new one starts on the same state."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from reautod.store.database import Database
from tests.speech import SPEECH_DIR
from tests.store.conftest import TEST_DB_SETTINGS


async def snapshot(db_path: Path) -> dict[str, Any]:
    db = Database(f"sqlite+aiosqlite:///{db_path}", TEST_DB_SETTINGS)
    await db.open()
    try:
        async with db.engine.connect() as conn:
            calls = (await conn.execute(text("SELECT id, status, stream_sid FROM calls"))).all()
            turns = (
                await conn.execute(text("SELECT call_id, seq, speaker, text FROM turns ORDER BY seq"))
            ).all()
        return {"calls": [tuple(c) for c in calls], "turns": [tuple(t) for t in turns]}
    finally:
        await db.close()


@pytest.mark.slow
def test_a_call_survives_a_daemon_restart(
    daemon_factory: Any, test_models_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    config = (
        f'state_dir = "{state}"\n'
        f'[models]\ndir = "{test_models_dir}"\nprofile = "test"\ndevice = "cpu"\n'
        "[http]\nport = 0\n[metrics]\nport = 0\n"
    )
    first = daemon_factory(config, name="first")
    first.start()
    first.wait_ready()
    # real speech: the random-weight TTS voice makes noise that VAD rightly does not call speech
    lead = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
    result = first.ctl("--json", "call", "simulate", "--fast", "--lead-audio", str(lead), timeout=180)
    assert result.returncode == 0, result.stderr + first.log()[-3000:]
    first.stop()  # SIGTERM: the write-behind queue drains before exit
    assert first.proc.returncode == 0, first.log()[-3000:]

    before = asyncio.run(snapshot(state / "reautod.db"))
    assert len(before["calls"]) == 1, before
    assert before["calls"][0][1] == "completed"
    assert before["turns"], "the simulated call's turns were not stored"
    assert {t[2] for t in before["turns"]} == {"agent", "caller"}

    second = daemon_factory(config, name="second")
    second.start()
    second.wait_ready()
    stats = second.ctl("--json", "stats", "--since", datetime.now(UTC).date().isoformat())
    assert stats.returncode == 0, stats.stderr
    assert sum(day["attempts"] for day in json.loads(stats.stdout)["days"]) == 1
    second.stop()
    assert asyncio.run(snapshot(state / "reautod.db")) == before
