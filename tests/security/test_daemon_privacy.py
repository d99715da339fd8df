"""End to end through a real daemon (subprocess) and reautoctl: a recorded call is sealed on disk
and reads back through a subject export; an erasure removes the person, the number is never
dialed or imported again, and every state-changing command is in the audit log with the peer's
uid, the chain intact; the daemon's log names no one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import time
import uuid
import wave
import zipfile
from pathlib import Path
from typing import Any

import pytest

from reautod.security.keys import generate_key_text
from tests.speech import SPEECH_DIR

ALICE, BOB = "+12125550147", "+12125550148"


def config(state: Path, models: Path) -> str:
    return (
        f'state_dir = "{state}"\nshutdown_grace_s = 5\n'
        f'[models]\ndir = "{models}"\nprofile = "test"\ndevice = "cpu"\n'
        "[http]\nport = 0\n[metrics]\nport = 0\n[calls]\nrecord = true\n"
    )


def recording_rows(db: Path, timeout: float = 60.0) -> list[sqlite3.Row]:
    """The recordings rows once both directions are written (the write-behind queue is async)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db, timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM recordings").fetchall()
        if len(rows) == 2 or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


@pytest.mark.slow
def test_sealed_recording_export_erase_and_audit(
    daemon_factory: Any, test_models_dir: Path, tmp_path: Path
) -> None:
    lead = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
    if not lead.exists():
        pytest.skip(f"speech fixture {lead} not present")
    state = tmp_path / "state"
    d = daemon_factory(config(state, test_models_dir),
                       env={"REAUTOD_SECRET_ENCRYPTION_KEY": generate_key_text()})
    d.start()
    d.wait_ready()
    ok(d.ctl("--json", "call", "simulate", "--fast", "--lead-audio", str(lead), timeout=180))

    # 1. sealed at rest: no WAV on disk, rows say encrypted
    rows = recording_rows(state / "reautod.db")
    assert len(rows) == 2, d.log()[-3000:]
    for row in rows:
        path = Path(row["path"])
        assert path.name.endswith(".wav.sealed") and path.is_file()
        head = path.read_bytes()[:64]
        assert not head.startswith(b"RIFF") and b"WAVE" not in head
        assert row["encrypted"]
    # the simulated call was to Alice (the simulator has no number of its own)
    with sqlite3.connect(state / "reautod.db", timeout=10) as conn:
        conn.execute("UPDATE calls SET to_number = ?", (ALICE,))

    # 2. the subject export decrypts the recordings back to the WAV their checksums describe
    archive = tmp_path / "alice.zip"
    ok(d.ctl("privacy", "export", ALICE, "--out", str(archive)))
    with zipfile.ZipFile(archive) as z:
        wavs = sorted(n for n in z.namelist() if n.endswith(".wav"))
        assert len(wavs) == 2, z.namelist()
        sums = {r["sha256"] for r in rows}
        for name in wavs:
            data = z.read(name)
            assert hashlib.sha256(data).hexdigest() in sums
            with wave.open(io.BytesIO(data)) as w:
                assert w.getframerate() == 8000 and w.getnframes() > 8000

    # ... and `reautoctl call audio` fetches each direction as the WAV its checksum describes
    call_id = str(uuid.UUID(str(rows[0]["call_id"])))
    for row in rows:
        wav = tmp_path / f"{row['direction']}.wav"
        ok(d.ctl("call", "audio", call_id, "--direction", row["direction"], "--out", str(wav)))
        assert hashlib.sha256(wav.read_bytes()).hexdigest() == row["sha256"]
    keys = json.loads(ok(d.ctl("--json", "keys", "status")))
    assert keys["files_by_key"] == {keys["current"]: 2} and keys["plain_files"] == 0

    # 3. a lead list with Alice and Bob, then Alice's erasure
    ok(d.ctl("campaign", "create", "spring"))
    leads = tmp_path / "leads.csv"
    leads.write_text(f"phone,name,timezone\n{ALICE},Alice,America/New_York\n"
                     f"{BOB},Bob,America/New_York\n")
    ok(d.ctl("privacy", "erase", ALICE, "--yes"))
    assert not [p for p in (state / "recordings").rglob("*") if p.is_file()]
    checked = json.loads(ok(d.ctl("--json", "privacy", "check", ALICE)))
    assert checked["erased"] is True
    gone = d.ctl("call", "audio", call_id, "--out", str(tmp_path / "gone.wav"))
    assert gone.returncode == 1 and "not_found" in gone.stderr
    assert not (tmp_path / "gone.wav").exists()

    # 4. the erased number is never dialed, nor imported again (and the import says so)
    refused = d.ctl("dial", ALICE)
    assert refused.returncode == 1 and "(erased)" in refused.stderr, refused.stderr
    imported = json.loads(ok(d.ctl("--json", "campaign", "import", "spring", str(leads))))
    assert imported["summary"]["erased_dropped"] == 1
    assert imported["summary"]["new_leads"] == 1
    assert "erased_dropped" in ok(d.ctl("campaign", "import", "spring", str(leads)))

    # 5. every state-changing command is audited with the peer's uid, and the chain holds
    listed = json.loads(ok(d.ctl("--json", "audit", "list", "--limit", "50")))["entries"]
    by_action = {(e["action"], e["outcome"]): e for e in listed}
    for action, outcome in (("call.simulate", "ok"), ("privacy.export", "ok"),
                            ("privacy.erase", "ok"), ("campaign.create", "ok"),
                            ("campaign.import", "ok"), ("dial", "erased")):
        entry = by_action[(action, outcome)]
        assert entry["actor"] == f"uid:{os.getuid()}", entry
        assert "control socket" in entry["origin"]
    # reads are not audited, and no entry holds the number
    assert not {e["action"] for e in listed} & {"privacy.check", "audit.list", "status"}
    assert ALICE not in json.dumps(listed)
    table = ok(d.ctl("audit"))
    assert "privacy.erase" in table and f"uid:{os.getuid()}" in table
    verified = ok(d.ctl("audit", "verify"))
    assert "intact" in verified
    d.stop()
    assert d.proc.returncode == 0, d.log()[-3000:]
    # nothing of the people in the daemon's log (INFO): not their numbers, not their names
    leaks = [line for line in d.log().splitlines()
             if any(p in line for p in (ALICE[2:], BOB[2:], "Alice", "Bob"))]
    assert not leaks, leaks
