"""`reautoctl backup create | verify | restore`: a round trip into a fresh database and state
directory on SQLite and on Postgres, and every way a bad archive or target is refused."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import socket
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from reautod.backup.archive import MANIFEST
from reautod.config import DatabaseSettings
from reautod.control import cli
from reautod.store.database import Database
from reautod.store.enums import RecordingDirection, RecordingFormat
from reautod.store.records import RecordingFinalized
from reautod.store.repositories import CallRepository
from reautod.store.repositories.recordings import RecordingRepository
from tests.fixtures.services import temporary_database
from tests.store.factories import T0, call_started, campaign_contact_lead, turn

AUDIO = bytes(range(256)) * 64
T = TypeVar("T")


@dataclass
class Box:
    """One reautod installation: a config file naming its database and state directory."""

    root: Path
    database_url: str

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        path = self.root / "reautod.toml"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f'state_dir = "{self.state_dir}"\ndatabase_url = "{self.database_url}"\n'
            )
        return path

    def ctl(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
        code = cli.main(["--config", str(self.config), "--json", *args])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else {}


def with_db(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(url, DatabaseSettings())
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


async def fill(db: Database, recordings: Path) -> tuple[uuid.UUID, Path]:
    """A campaign, a call with three turns and one recording file with its row."""
    await db.upgrade("head")
    campaign, contact, lead = await campaign_contact_lead(db)
    started = call_started(campaign, contact, lead)
    wav = recordings / "2026" / str(started.call_id) / "inbound.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(AUDIO)
    (wav.parent / "outbound.wav.partial").write_bytes(b"live call")  # never in a backup
    await CallRepository(db).write([
        started, *(turn(started.call_id, seq) for seq in range(3)),
        RecordingFinalized(
            recording_id=uuid.uuid4(), call_id=started.call_id,
            direction=RecordingDirection.INBOUND, path=str(wav), format=RecordingFormat.WAV,
            sample_rate=8000, channels=1, duration_ms=1000, size_bytes=len(AUDIO),
            sha256=hashlib.sha256(AUDIO).hexdigest(), created_at=T0,
            retention_until=T0 + timedelta(days=90),
        ),
    ])
    return started.call_id, wav


async def contents(db: Database, call_id: uuid.UUID) -> tuple[int, list[str]]:
    call = await CallRepository(db).get(call_id)
    assert call is not None
    rows = await RecordingRepository(db).for_call(call_id)
    return len(await CallRepository(db).turns(call_id)), [r.path for r in rows]


@pytest.fixture(params=["sqlite", "postgres"])
def boxes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Box, Box]]:
    """A source box and a fresh target box on the same backend."""
    if request.param == "sqlite":
        yield (Box(tmp_path / "a", f"sqlite+aiosqlite:///{tmp_path / 'a' / 'state' / 'reautod.db'}"),
               Box(tmp_path / "b", f"sqlite+aiosqlite:///{tmp_path / 'b' / 'state' / 'reautod.db'}"))
        return
    admin = request.getfixturevalue("postgres_admin_url")
    with temporary_database(admin) as source, temporary_database(admin) as target:
        yield Box(tmp_path / "a", source), Box(tmp_path / "b", target)


def test_round_trip_into_a_fresh_database_and_state_directory(
    boxes: tuple[Box, Box], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = boxes
    call_id, wav = with_db(source.database_url, lambda db: fill(db, source.state_dir / "recordings"))
    backups = tmp_path / "backups"

    code, created = source.ctl("backup", "create", "--dir", str(backups), capsys=capsys)
    assert code == 0, created
    archive = Path(str(created["path"]))
    assert archive.parent == backups and archive.name.startswith("reautod-backup-")
    assert created["recordings"] == 1 and created["config_included"] is True
    assert any("credentials" in line for line in created["excluded"])  # type: ignore[union-attr]
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[-1] == MANIFEST
    assert not any(n.endswith(".partial") for n in names)

    code, verified = source.ctl("backup", "verify", str(archive), capsys=capsys)
    assert code == 0
    assert verified["files"] == 3 and verified["schema_revision"] == created["schema_revision"]

    config_copy = tmp_path / "restored.toml"
    code, restored = target.ctl("backup", "restore", str(archive), "--config-to", str(config_copy),
                                capsys=capsys)
    assert code == 0, restored
    assert restored["recordings"] == 1 and restored["recording_rows_relocated"] == 1
    assert restored["schema_revision"] == restored["code_head"]
    assert "systemctl start reautod" in str(restored["next_step"])
    assert config_copy.read_text() == source.config.read_text()

    turns, paths = with_db(target.database_url, lambda db: contents(db, call_id))
    assert turns == 3
    new_wav = target.state_dir / "recordings" / wav.relative_to(source.state_dir / "recordings")
    assert paths == [str(new_wav)]
    assert new_wav.read_bytes() == AUDIO
    assert not new_wav.with_name("outbound.wav.partial").exists()

    # A second restore into the now populated target is refused, and changes nothing.
    code = cli.main(["--config", str(target.config), "backup", "restore", str(archive)])
    assert code == 1
    assert "fresh" in capsys.readouterr().err
    assert with_db(target.database_url, lambda db: contents(db, call_id))[0] == 3


@pytest.fixture
def sqlite_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Box, Path]:
    box = Box(tmp_path / "a", f"sqlite+aiosqlite:///{tmp_path / 'a' / 'state' / 'reautod.db'}")
    with_db(box.database_url, lambda db: fill(db, box.state_dir / "recordings"))
    code, created = box.ctl("backup", "create", "--dir", str(tmp_path / "backups"), capsys=capsys)
    assert code == 0
    return box, Path(str(created["path"]))


def rewrite(archive: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite `archive` member by member; `change(name, data)` returns new data or None to drop."""
    members = []
    with tarfile.open(archive) as tar:
        for member in tar:
            f = tar.extractfile(member)
            members.append((member, f.read() if f else b""))
    with tarfile.open(archive, "w") as tar:
        for member, data in members:
            new = change(member.name, data)
            if new is None:
                continue
            member.size = len(new)
            tar.addfile(member, io.BytesIO(new))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda n, d: d[:-1] + b"\x00" if n.endswith(".wav") else d, "checksum"),
        (lambda n, d: None if n == MANIFEST else d, "no manifest.json"),
        (lambda n, d: None if n.endswith(".wav") else d, "missing recordings/"),
        (lambda n, d: d.replace(b'"format": 1', b'"format": 2') if n == MANIFEST else d,
         "manifest.json is not valid (format"),
        (lambda n, d: d.replace(b'"recordings/', b'"../../etc/') if n == MANIFEST else d,
         "unsafe or repeated paths"),
    ],
    ids=["flipped-byte", "no-manifest", "missing-file", "future-format", "path-escape"],
)
def test_verify_refuses_a_damaged_or_hostile_archive(
    sqlite_archive: tuple[Box, Path], change, words: str, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    box, archive = sqlite_archive
    rewrite(archive, change)
    assert cli.main(["--config", str(box.config), "backup", "verify", str(archive)]) == 1
    assert words in capsys.readouterr().err


def test_a_member_outside_the_layout_is_refused_before_anything_is_written(
    sqlite_archive: tuple[Box, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _box, archive = sqlite_archive
    with tarfile.open(archive, "a") as tar:
        evil = tarfile.TarInfo("../evil.sh")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"boom"))
    target = Box(tmp_path / "b", f"sqlite+aiosqlite:///{tmp_path / 'b' / 'state' / 'reautod.db'}")
    assert cli.main(["--config", str(target.config), "backup", "restore", str(archive)]) == 1
    assert "unexpected member '../evil.sh'" in capsys.readouterr().err
    assert not (tmp_path / "evil.sh").exists()
    assert not target.state_dir.exists()


def test_restore_refuses_another_backend(
    sqlite_archive: tuple[Box, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _box, archive = sqlite_archive
    pg = Box(tmp_path / "pg", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert cli.main(["--config", str(pg.config), "backup", "restore", str(archive)]) == 1
    assert "holds a sqlite database" in capsys.readouterr().err


def test_keep_prunes_all_but_the_newest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = Box(tmp_path / "a", f"sqlite+aiosqlite:///{tmp_path / 'a' / 'state' / 'reautod.db'}")
    with_db(box.database_url, lambda db: db.upgrade("head"))
    backups = tmp_path / "backups"
    backups.mkdir()
    old = [backups / f"reautod-backup-2026010{i}T000000Z.tar" for i in (1, 2, 3)]
    for path in old:
        path.write_bytes(b"")
    unrelated = backups / "notes.txt"
    unrelated.write_text("keep me")
    code, created = box.ctl("backup", "create", "--dir", str(backups), "--keep", "2", capsys=capsys)
    assert code == 0
    assert sorted(created["pruned"]) == [str(p) for p in old[:2]]  # type: ignore[arg-type]
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [old[2].name, Path(str(created["path"])).name, "notes.txt"])


def test_create_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = Box(tmp_path / "a", f"sqlite+aiosqlite:///{tmp_path / 'a' / 'state' / 'reautod.db'}")
    assert cli.main(["--config", str(box.config), "backup", "create", "--dir", str(tmp_path)]) == 1
    assert "no database at" in capsys.readouterr().err
    assert list(tmp_path.glob("*.tar*")) == []


def test_restore_refuses_while_the_daemon_answers(
    sqlite_archive: tuple[Box, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stand-in daemon on the control socket answers `version`; restore must not touch data."""
    _box, archive = sqlite_archive
    target = Box(tmp_path / "b", f"sqlite+aiosqlite:///{tmp_path / 'b' / 'state' / 'reautod.db'}")
    path = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp")) / "control.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as f:
            request = json.loads(f.readline())
            f.write(json.dumps({"id": request["id"], "result": {"version": "9"}}).encode() + b"\n")
            f.flush()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        code = cli.main(["--config", str(target.config), "--socket", str(path),
                         "backup", "restore", str(archive)])
    finally:
        thread.join(timeout=10)
        server.close()
        shutil.rmtree(path.parent)
    assert code == 1
    assert "stop it first" in capsys.readouterr().err
    assert not target.state_dir.exists()
