"""The backup archive: one uncompressed tar with its manifest last.

    database/reautod.pgdump  or  database/reautod.sqlite
    recordings/...           the tree under <state dir>/recordings, finished files only
    config/reautod.toml      the config file the daemon reads, when there is one
    manifest.json            written last, once every file's size and sha256 are known

Uncompressed because what it holds is already compact (a custom-format dump is compressed,
WAV audio barely compresses) and a tar can be listed and checked member by member. The file is
written as `NAME.tar.partial` and renamed when complete, so a crash never leaves something that
looks like a backup. An archive is input from outside when it is read back: every member name is
checked against the layout above (no absolute paths, no `..`, regular files only) before anything
is written, and every byte is checked against the manifest.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from reautod.backup.database import DUMP_NAMES, Backend, BackupError

FORMAT = 1
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"
_CHUNK = 1 << 20
_MEMBER = re.compile(
    r"database/reautod\.(pgdump|sqlite)|config/reautod\.toml|recordings(/[A-Za-z0-9_.-]+)+"
)
# What a backup never holds, written into every manifest and printed by `backup create`.
EXCLUDED = (
    "credentials: the Twilio token, ElevenLabs key, JWT secret and encryption key "
    "(/etc/reautod/credentials, systemd credentials) are never backed up; keep them in your "
    "secret store (Ansible Vault). Recordings encrypted at rest need the same encryption key",
    "models: reinstall them with `reautoctl models pull`",
    "recordings still being written (*.partial) by calls live during the backup",
)


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    """What an archive holds; read back from outside, so validated strictly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    created_at: datetime
    reautod_version: str
    database_backend: Backend
    schema_revision: str | None
    recordings_dir: str | None  # where the recordings were, so a restore can relocate their rows
    files: list[FileEntry]
    excluded: list[str]

    @property
    def database_member(self) -> str:
        return next(f.path for f in self.files if f.path.startswith("database/"))


class _Hashing:
    """A file object that hashes what is read through it (tarfile reads in chunks)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


class ArchiveWriter:
    """Adds files to `NAME.tar.partial`; `finish` appends the manifest and renames it into place."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = final.with_name(final.name + PARTIAL_SUFFIX)
        self.entries: list[FileEntry] = []
        self._tar = tarfile.open(self.partial, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115  (closed by finish/abort)

    def add_file(self, name: str, source: Path) -> FileEntry:
        if not _MEMBER.fullmatch(name):
            raise BackupError(f"refusing to archive {name!r}: not a backup member name")
        info = self._tar.gettarinfo(str(source), arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with source.open("rb") as f:
            reader = _Hashing(f)
            self._tar.addfile(info, reader)
        entry = FileEntry(path=name, size=info.size, sha256=reader.digest.hexdigest())
        self.entries.append(entry)
        return entry

    def finish(self, manifest: Manifest) -> None:
        data = manifest.model_dump_json(indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mtime = int(manifest.created_at.timestamp())
        info.mode = 0o640
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.close()
        with self.partial.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(self.partial, self.final)

    def abort(self) -> None:
        self._tar.close()
        self.partial.unlink(missing_ok=True)


@contextmanager
def writing(final: Path) -> Iterator[ArchiveWriter]:
    """An ArchiveWriter that removes its partial file if the block fails."""
    writer = ArchiveWriter(final)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise


def read_manifest(archive: Path) -> Manifest:
    """The manifest of `archive`, validated (BackupError if absent or malformed)."""
    with _open(archive) as tar:
        try:
            member = tar.getmember(MANIFEST)
        except KeyError:
            raise BackupError(f"{archive} has no {MANIFEST}: not a reautod backup, or cut short") from None
        f = tar.extractfile(member)
        if f is None:
            raise BackupError(f"{archive}: {MANIFEST} is not a regular file")
        return _parse_manifest(archive, f.read())


def walk(archive: Path, manifest: Manifest, visit: Callable[[str, IO[bytes]], None]) -> int:
    """Call `visit(name, reader)` for every file member, checking each against the manifest.

    `visit` must read its reader to the end. Returns the bytes checked. BackupError on an unsafe
    or unexpected member, a size or checksum mismatch, or a listed file that is missing.
    """
    expected = {f.path: f for f in manifest.files}
    seen: set[str] = set()
    total = 0
    with _open(archive) as tar:
        for member in tar:
            if member.name == MANIFEST:
                continue
            entry = expected.get(member.name)
            if entry is None or not _MEMBER.fullmatch(member.name) or not member.isfile():
                raise BackupError(f"{archive}: unexpected member {member.name!r}")
            if member.name in seen:
                raise BackupError(f"{archive}: {member.name} appears twice")
            raw = tar.extractfile(member)
            assert raw is not None  # isfile() above
            reader = _Hashing(raw)
            visit(member.name, reader)  # type: ignore[arg-type]  # only .read() is used
            reader.read()  # whatever visit left, so the digest covers the whole member
            if member.size != entry.size or reader.digest.hexdigest() != entry.sha256:
                raise BackupError(f"{archive}: {member.name} does not match its checksum")
            seen.add(member.name)
            total += member.size
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"{archive}: missing {', '.join(missing[:5])}")
    return total


def copy_to(reader: IO[bytes], dest: Path) -> None:
    """Write a member to `dest` through `dest.restoring`, renamed when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".restoring")
    with partial.open("wb") as out:
        while chunk := reader.read(_CHUNK):
            out.write(chunk)
    os.replace(partial, dest)


def drain(reader: IO[bytes]) -> None:
    while reader.read(_CHUNK):
        pass


def _parse_manifest(archive: Path, data: bytes) -> Manifest:
    try:
        manifest = Manifest.model_validate_json(data)
    except PydanticValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BackupError(f"{archive}: {MANIFEST} is not valid ({where}: {first['msg']})") from None
    names = [f.path for f in manifest.files]
    bad = [n for n in names if not _MEMBER.fullmatch(n)]
    if bad or len(set(names)) != len(names):
        raise BackupError(f"{archive}: {MANIFEST} lists unsafe or repeated paths {bad[:3]}")
    databases = [n for n in names if n.startswith("database/")]
    if databases != [f"database/{DUMP_NAMES[manifest.database_backend]}"]:
        raise BackupError(f"{archive}: {MANIFEST} must list exactly one {manifest.database_backend} dump")
    return manifest


@contextmanager
def _open(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(archive, "r:")  # noqa: SIM115  (closed below)
    except FileNotFoundError:
        raise BackupError(f"{archive} does not exist") from None
    except (tarfile.TarError, OSError) as err:
        raise BackupError(f"{archive} is not a readable tar archive: {err}") from None
    try:
        yield tar
    except tarfile.TarError as err:
        raise BackupError(f"{archive} is damaged: {err}") from None
    finally:
        tar.close()
