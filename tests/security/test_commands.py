"""reautoctl privacy / audit / keys against the real methods on a real control socket, audited
as the daemon audits them; what reaches the terminal is escaped."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reautod.control import cli
from reautod.security.keys import KeyRing, generate_key_text
from reautod.store.database import Database
from reautod.store.repositories.audit import AuditRepository
from tests.security.people import ALICE, BOB, person
from tests.security.served import ServedSecurity
from tests.store.conftest import TEST_DB_SETTINGS

OLD_KEY, NEW_KEY = generate_key_text(), generate_key_text()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'state' / 'reautod.db'}",
                      TEST_DB_SETTINGS)
        await db.open()
        await db.upgrade("head")
        await db.close()

    asyncio.run(migrate())
    yield tmp_path / "state"


def served(state: Path, *keys: str) -> ServedSecurity:
    return ServedSecurity(f"sqlite+aiosqlite:///{state / 'reautod.db'}", state, "\n".join(keys))


def ctl(capsys: pytest.CaptureFixture[str], sock: Path,
        *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--socket", str(sock), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_privacy_requests_end_to_end(capsys: pytest.CaptureFixture[str],
                                     state: Path, tmp_path: Path) -> None:
    with served(state, OLD_KEY) as daemon:
        sock = daemon.socket
        for phone, name, seed in ((ALICE, "Alice Example", 1), (BOB, "Bob Other", 2)):
            daemon.run(lambda db, p=phone, n=name, s=seed: person(  # type: ignore[misc]
                db, state / "recordings", daemon.keys, p, n, s))
        out_file = tmp_path / "alice.zip"
        code, out, err = ctl(capsys, sock, "privacy", "export", ALICE, "--regime",
                             "ccpa", "--received", "2026-12-01", "--out", str(out_file))
        assert code == 0, err
        assert "2027-01-15" in out  # due: 45 days after receipt
        with zipfile.ZipFile(out_file) as archive:
            assert json.loads(archive.read("subject.json"))["phone"] == ALICE
            assert sum(n.endswith(".wav") for n in archive.namelist()) == 2

        code, _, err = ctl(capsys, sock, "privacy", "erase", ALICE)
        assert code == 1 and "--yes" in err
        code, out, err = ctl(capsys, sock, "--json", "privacy", "erase", ALICE, "--yes")
        assert code == 0, err
        receipt = json.loads(out)
        assert receipt["rows_removed"]["contacts"] == 1 and ALICE not in out
        code, out, _ = ctl(capsys, sock, "privacy", "check", ALICE)
        assert code == 0 and "was erased" in out
        code, out, _ = ctl(capsys, sock, "privacy", "check", BOB)
        assert "was not erased" in out
        code, out, _ = ctl(capsys, sock, "privacy", "requests")
        assert code == 0 and out.count("completed") == 2 and "ccpa" in out
        code, out, _ = ctl(capsys, sock, "privacy", "requests", "--open")
        assert code == 0 and "completed" not in out
        code, _, err = ctl(capsys, sock, "privacy", "export", "555-0100")
        assert code == 1 and "E.164" in err
        code, _, err = ctl(capsys, sock, "privacy", "export", BOB, "--received",
                           "2999-01-01")
        assert code == 1 and "future" in err

        # every state-changing call is in the audit log: who, from where, what, result
        code, out, _ = ctl(capsys, sock, "--json", "audit")
        entries = json.loads(out)["entries"]
        assert [(e["action"], e["outcome"]) for e in entries] == [
            ("privacy.export", "invalid_input"), ("privacy.erase", "ok"),
            ("privacy.export", "ok")]
        assert all(e["actor"].startswith("uid:") and "control socket" in e["origin"]
                   for e in entries)
        assert entries[1]["detail"] == {"params": ["confirm", "number", "regime"]}
        assert ALICE not in out  # parameter names only, never the number
        code, out, _ = ctl(capsys, sock, "audit", "--since", "2999-01-01")
        assert code == 0 and "privacy" not in out


def test_audit_verify_finds_the_tampered_entry_and_output_is_escaped(
        capsys: pytest.CaptureFixture[str], state: Path) -> None:
    with served(state, OLD_KEY) as daemon:
        sock = daemon.socket
        ids = [daemon.run(lambda db, i=i: AuditRepository(db).append(  # type: ignore[misc]
            "uid:\x1b[2J\x1b]0;pwned\x07", f"campaign.start.{i}")) for i in range(4)]
        code, out, _ = ctl(capsys, sock, "audit")
        assert code == 0 and "\x1b" not in out and "\x07" not in out
        assert "uid:\\x1b[2J\\x1b]0;pwned\\x07" in out
        code, out, _ = ctl(capsys, sock, "audit", "--verify")
        assert code == 0 and "intact" in out and "entries checked  4" in out

        with sqlite3.connect(state / "reautod.db") as conn:
            conn.execute("DROP TRIGGER audit_log_no_update")
            conn.execute("UPDATE audit_log SET action = 'campaign.stop' WHERE id = ?", (ids[2],))
        code, out, _ = ctl(capsys, sock, "--json", "audit", "--verify")
        verdict = json.loads(out)
        assert code == 1 and not verdict["ok"] and verdict["first_bad_id"] == ids[2]
        code, out, _ = ctl(capsys, sock, "audit", "--verify")
        assert code == 1 and "BROKEN" in out and f"first bad entry  {ids[2]}\n" in out


def test_key_rotation(capsys: pytest.CaptureFixture[str],
                      state: Path) -> None:
    code, out, _ = ctl(capsys, state / "none.sock", "keys", "generate")
    assert code == 0 and len(base64.b64decode(out.strip())) == 32  # no daemon needed
    old_id = KeyRing.parse(OLD_KEY).current.id_hex
    new_id = KeyRing.parse(NEW_KEY).current.id_hex
    with served(state, OLD_KEY) as daemon:
        daemon.run(lambda db: person(db, state / "recordings", daemon.keys, ALICE, "A", 1))
        code, out, _ = ctl(capsys, daemon.socket, "--json", "keys", "status")
        assert json.loads(out)["files_by_key"] == {old_id: 2}
    with served(state, NEW_KEY, OLD_KEY) as daemon:  # restarted with the new key first
        sock = daemon.socket
        code, out, err = ctl(capsys, sock, "keys", "rotate")
        assert code == 0, err
        assert "re-wrapped               2" in out and "can leave the credential" in out
        code, out, _ = ctl(capsys, sock, "--json", "keys", "status")
        status = json.loads(out)
        assert status["files_by_key"] == {new_id: 2} and status["older"] == [old_id]
        code, out, _ = ctl(capsys, sock, "--json", "keys", "rotate")
        assert json.loads(out)["already_current"] == 2
        code, out, _ = ctl(capsys, sock, "--json", "audit")
        assert [e["action"] for e in json.loads(out)["entries"]] == ["keys.rotate"] * 2
    with served(state, NEW_KEY) as daemon:  # the old key is gone: every file still opens
        code, out, err = ctl(capsys, daemon.socket, "--json", "privacy", "export",
                             ALICE)
        assert code == 0, err
        assert json.loads(out)["recordings"] == 2
