"""`reautoctl backup create | verify | restore`: the database, recordings and config of one box.

create: dump the configured database (pg_dump custom format, or SQLite's online backup while the
daemon runs), add finished recordings and the config file, write the manifest last, rename the
archive into place, then keep only the newest `keep` archives. verify: every member against the
manifest's sha256, then the dump itself (`pg_restore --list` or SQLite's integrity check).
restore: verify first, then load the dump into the configured database (which must be empty, or
`force`), put the recordings under the configured state directory (recording rows are pointed at
their new place when it differs), and write the config only where asked. Credentials are never
in an archive (see `archive.EXCLUDED`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TypeVar

from reautod import __version__
from reautod.backup import archive, database
from reautod.backup.archive import EXCLUDED, Manifest
from reautod.backup.database import DUMP_NAMES, BackupError, Target
from reautod.config import Settings
from reautod.store.database import Database
from reautod.store.recordings import PARTIAL_SUFFIX
from reautod.store.repositories.recordings import RecordingRepository
from reautod.store.schema import head_revision

T = TypeVar("T")
ARCHIVE_PREFIX = "reautod-backup-"
ARCHIVE_GLOB = f"{ARCHIVE_PREFIX}*.tar"


@dataclass(frozen=True)
class CreateResult:
    path: str
    size_bytes: int
    database_backend: str
    schema_revision: str | None
    recordings: int
    config_included: bool
    pruned: list[str]
    excluded: list[str]
    seconds: float


@dataclass(frozen=True)
class VerifyResult:
    path: str
    created_at: str
    reautod_version: str
    database_backend: str
    schema_revision: str | None
    files: int
    bytes_checked: int
    database_check: str
    excluded: list[str]


@dataclass(frozen=True)
class RestoreResult:
    path: str
    database: str
    recordings: int
    recording_rows_relocated: int
    config_written_to: str | None
    schema_revision: str | None
    code_head: str
    next_step: str
    seconds: float


def archive_name(now: datetime) -> str:
    return f"{ARCHIVE_PREFIX}{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.tar"


def recordings_dir(settings: Settings) -> Path:
    return settings.resolved_state_dir() / "recordings"


def create(
    settings: Settings, config_path: Path | None, out_dir: Path, *, keep: int | None = None,
    now: datetime | None = None,
) -> CreateResult:
    """Write a new archive into `out_dir`; with `keep`, remove all but the newest `keep`."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    target = Target.from_url(settings.effective_database_url())
    if target.backend == "sqlite" and not target.sqlite_path.is_file():
        raise BackupError(f"there is no database at {target.sqlite_path} to back up")
    revision = _with_db(settings, target, lambda db: db.schema_status()).current
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    final = out_dir / archive_name(now)
    if final.exists():
        raise BackupError(f"{final} already exists")
    source_recordings = recordings_dir(settings)
    with tempfile.TemporaryDirectory(prefix=".dump-", dir=out_dir) as tmp, \
            archive.writing(final) as writer:
        dump_file = Path(tmp) / DUMP_NAMES[target.backend]
        database.dump(target, dump_file)
        writer.add_file(f"database/{dump_file.name}", dump_file)
        recordings = 0
        for path in _finished_recordings(source_recordings):
            writer.add_file(f"recordings/{path.relative_to(source_recordings).as_posix()}", path)
            recordings += 1
        if config_path is not None and config_path.is_file():
            writer.add_file("config/reautod.toml", config_path)
        writer.finish(Manifest(
            format=archive.FORMAT, created_at=now, reautod_version=__version__,
            database_backend=target.backend, schema_revision=revision,
            recordings_dir=str(source_recordings), files=writer.entries, excluded=list(EXCLUDED),
        ))
    pruned = prune(out_dir, keep) if keep is not None else []
    return CreateResult(
        path=str(final), size_bytes=final.stat().st_size, database_backend=target.backend,
        schema_revision=revision, recordings=recordings,
        config_included=any(e.path.startswith("config/") for e in writer.entries),
        pruned=[str(p) for p in pruned], excluded=list(EXCLUDED),
        seconds=round(time.monotonic() - started, 3),
    )


def verify(path: Path) -> VerifyResult:
    """Check every byte of `path` against its manifest, then check the dump itself."""
    manifest = archive.read_manifest(path)
    with tempfile.TemporaryDirectory(prefix="reautod-verify-") as tmp:
        dump_file = Path(tmp) / DUMP_NAMES[manifest.database_backend]

        def visit(name: str, reader: IO[bytes]) -> None:
            if name == manifest.database_member:
                archive.copy_to(reader, dump_file)

        checked = archive.walk(path, manifest, visit)
        db_check = database.check(manifest.database_backend, dump_file)
    return VerifyResult(
        path=str(path), created_at=manifest.created_at.isoformat(),
        reautod_version=manifest.reautod_version, database_backend=manifest.database_backend,
        schema_revision=manifest.schema_revision, files=len(manifest.files),
        bytes_checked=checked, database_check=db_check, excluded=manifest.excluded,
    )


def restore(
    settings: Settings, path: Path, *, config_to: Path | None = None, force: bool = False,
) -> RestoreResult:
    """Verify `path`, then restore it into the configured database and state directory."""
    started = time.monotonic()
    verify(path)
    manifest = archive.read_manifest(path)
    target = Target.from_url(settings.effective_database_url())
    database.require_backend(manifest.database_backend, target)
    if config_to is not None and config_to.exists() and not force:
        raise BackupError(f"{config_to} exists; pass --force to overwrite it")
    dest_recordings = recordings_dir(settings)
    state_dir = settings.resolved_state_dir()
    owner = _state_owner(state_dir)
    recordings = 0
    with tempfile.TemporaryDirectory(prefix="reautod-restore-") as tmp:
        dump_file = Path(tmp) / DUMP_NAMES[manifest.database_backend]

        def visit(name: str, reader: IO[bytes]) -> None:
            nonlocal recordings
            if name == manifest.database_member:
                archive.copy_to(reader, dump_file)
            elif name.startswith("recordings/"):
                dest = dest_recordings / name.removeprefix("recordings/")
                if dest.exists() and not force:
                    raise BackupError(f"{dest} exists; restore into a fresh state directory or pass --force")
                archive.copy_to(reader, dest)
                _chown(dest, owner, state_dir)
                recordings += 1
            elif name == "config/reautod.toml" and config_to is not None:
                archive.copy_to(reader, config_to)

        archive.walk(path, manifest, visit)
        database.restore(manifest.database_backend, dump_file, target, force=force)
    if target.backend == "sqlite":
        _chown(target.sqlite_path, owner, state_dir)
    relocated = 0
    if manifest.recordings_dir and Path(manifest.recordings_dir) != dest_recordings:
        relocated = _with_db(settings, target, lambda db: RecordingRepository(db).relocate(
            manifest.recordings_dir or "", str(dest_recordings)))
    status = _with_db(settings, target, lambda db: db.schema_status())
    head = head_revision()
    next_step = ("start the daemon: systemctl start reautod" if status.current == head
                 else "the schema is behind this reautod: run `reautoctl db upgrade`, then "
                 "systemctl start reautod")
    return RestoreResult(
        path=str(path), database=target.display(), recordings=recordings,
        recording_rows_relocated=relocated,
        config_written_to=str(config_to) if config_to is not None else None,
        schema_revision=status.current, code_head=head, next_step=next_step,
        seconds=round(time.monotonic() - started, 3),
    )


def prune(out_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` archives in `out_dir` (names sort by time)."""
    if keep < 1:
        raise BackupError("--keep must be at least 1")
    archives = sorted(out_dir.glob(ARCHIVE_GLOB))
    doomed = archives[:-keep]
    for old in doomed:
        old.unlink()
    return doomed


def _finished_recordings(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith((PARTIAL_SUFFIX, ".restoring")))


def _with_db(settings: Settings, target: Target, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(target.url, settings.database)
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


def _state_owner(state_dir: Path) -> tuple[int, int] | None:
    """The state directory's owner, given to restored files when we run as root."""
    if os.geteuid() != 0 or not state_dir.exists():
        return None
    st = state_dir.stat()
    return st.st_uid, st.st_gid


def _chown(path: Path, owner: tuple[int, int] | None, state_dir: Path) -> None:
    """Give `path`, and the directories made for it inside the state directory, its owner."""
    if owner is None or not path.exists():
        return
    os.chown(path, *owner)
    for parent in path.parents:
        if parent == state_dir or state_dir not in parent.parents:
            break
        os.chown(parent, *owner)
