"""The database part of a backup: dump, check and restore, per backend.

Postgres: `pg_dump --format=custom` (compressed, restorable table by table, checked with
`pg_restore --list`), restored with `pg_restore --no-owner --no-privileges --exit-on-error
--single-transaction`, so a failed restore leaves the target as it was. The password travels in
`PGPASSWORD`, never on a command line that `ps` shows. SQLite: the online backup API, which
copies a consistent snapshot while the daemon writes; checked with `PRAGMA integrity_check`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url

from reautod.errors import ReautodError, UnavailableError
from reautod.store.database import normalize_url

Backend = Literal["postgres", "sqlite"]
DUMP_NAMES: dict[Backend, str] = {"postgres": "reautod.pgdump", "sqlite": "reautod.sqlite"}
_TOOL_TIMEOUT_S = 6 * 3600


class BackupError(ReautodError):
    """A backup could not be made, verified or restored; the message says why and what to do."""

    code = "backup_failed"


@dataclass(frozen=True)
class Target:
    """A database reautod is configured with, as the backup tools need it."""

    backend: Backend
    url: str  # the SQLAlchemy URL, password included (never printed)

    @classmethod
    def from_url(cls, url: str) -> Target:
        parsed = normalize_url(url)
        backend: Backend = "sqlite" if parsed.drivername.startswith("sqlite") else "postgres"
        return cls(backend, url)

    @property
    def sqlite_path(self) -> Path:
        return Path(str(make_url(self.url).database))

    def display(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def libpq(self) -> tuple[str, dict[str, str]]:
        """(connection URI without the password, environment carrying it) for pg_* tools."""
        parsed = make_url(self.url)
        uri = parsed.set(drivername="postgresql", password=None).render_as_string()
        env = {**os.environ}
        if parsed.password is not None:
            env["PGPASSWORD"] = str(parsed.password)
        return uri, env


def dump(target: Target, dest: Path) -> None:
    """Write a consistent copy of the database to `dest` (a new file)."""
    if target.backend == "sqlite":
        _sqlite_copy(target.sqlite_path, dest, must_exist=True)
        return
    uri, env = target.libpq()
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
          f"--file={dest}", f"--dbname={uri}"], env, f"pg_dump of {target.display()}")


def check(backend: Backend, path: Path) -> str:
    """Check a dump file is readable and whole; return a one-line description."""
    if backend == "sqlite":
        try:
            with _sqlite_connect(path, read_only=True) as conn:
                result = conn.execute("PRAGMA integrity_check").fetchone()
                tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
                count = tables.fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise BackupError(f"the SQLite copy is damaged: {err}") from err
        if result is None or result[0] != "ok":
            raise BackupError(f"the SQLite copy fails its integrity check: {result}")
        return f"SQLite integrity check ok, {count} tables"
    out = _run([_tool("pg_restore"), "--list", str(path)], dict(os.environ),
               "pg_restore --list of the dump")
    entries = [line for line in out.splitlines() if line and not line.startswith(";")]
    if not any(" TABLE DATA " in line for line in entries):
        raise BackupError("the Postgres dump holds no table data")
    return f"pg_restore lists {len(entries)} entries"


def restore(backend: Backend, dump_file: Path, target: Target, *, force: bool) -> None:
    """Load `dump_file` into `target`, which must be empty unless `force` (then it is replaced)."""
    require_backend(backend, target)
    if target.backend == "sqlite":
        path = target.sqlite_path
        if path.exists() and not force:
            raise BackupError(f"{path} exists; restore into a fresh state directory or pass --force")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".restoring")
        partial.unlink(missing_ok=True)
        _sqlite_copy(dump_file, partial, must_exist=True)
        for suffix in ("-wal", "-shm"):  # a stale WAL next to a replaced file would corrupt it
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        os.replace(partial, path)
        return
    tables = postgres_table_count(target)
    if tables and not force:
        raise BackupError(
            f"{target.display()} already holds {tables} tables; restore into a fresh database "
            "(createdb) or pass --force to replace its contents"
        )
    uri, env = target.libpq()
    args = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
            "--single-transaction", f"--dbname={uri}"]
    if tables:
        args += ["--clean", "--if-exists"]
    _run([*args, str(dump_file)], env, f"pg_restore into {target.display()}")


def require_backend(backend: Backend, target: Target) -> None:
    """A dump restores only into a database of its own kind."""
    if backend != target.backend:
        raise BackupError(
            f"this backup holds a {backend} database and the configured database_url is "
            f"{target.backend}; point database_url at a {backend} database to restore it"
        )


def postgres_table_count(target: Target) -> int:
    """Tables in the target's public schema (0 for a fresh database)."""
    uri, env = target.libpq()
    out = _run([_tool("psql"), "--no-psqlrc", "--tuples-only", "--no-align", f"--dbname={uri}",
                "--command=SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'public'"], env, f"connecting to {target.display()}")
    return int(out.strip() or 0)


def _sqlite_connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return sqlite3.connect(path)


def _sqlite_copy(source: Path, dest: Path, *, must_exist: bool) -> None:
    if must_exist and not source.is_file():
        raise BackupError(f"SQLite database {source} does not exist")
    try:
        with _sqlite_connect(source, read_only=True) as src, _sqlite_connect(dest) as dst:
            src.backup(dst)
            # The copy is a standalone file: no WAL beside it to carry along.
            dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as err:
        raise BackupError(f"cannot copy SQLite database {source}: {err}") from err


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise UnavailableError(
            f"{name} is not installed; install the PostgreSQL client "
            "(Debian: apt-get install postgresql-client)"
        )
    return found


def _run(args: list[str], env: dict[str, str], what: str) -> str:
    try:
        result = subprocess.run(args, env=env, capture_output=True, text=True,
                                timeout=_TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise BackupError(f"{what} did not finish in {_TOOL_TIMEOUT_S} s") from err
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {detail[-1] if detail else f'exit {result.returncode}'}")
    return result.stdout

