"""`reautoctl backup create | verify | restore`: archives of the database, recordings and config.

These run here, against the configured database and state directory, like `reautoctl db`.
`create` works while the daemon runs (consistent dumps); `restore` refuses while it runs.
Credentials are never in a backup: keep them in your secret store.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reautod.backup import service
from reautod.backup.database import BackupError
from reautod.config import config_path_from
from reautod.control.context import CliContext, key_values
from reautod.errors import NotRunningError

DEFAULT_DIR = Path("/var/backups/reautod")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("backup", help="back up and restore the database, recordings, config")
    leaves = parser.add_subparsers(dest="backup_command", metavar="ACTION", required=True)
    create = leaves.add_parser("create", help="write a new archive (safe while the daemon runs)")
    create.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"where archives go (default: {DEFAULT_DIR})")
    create.add_argument("--keep", type=int, help="then keep only the newest KEEP archives there")
    create.set_defaults(func=run_create)
    verify = leaves.add_parser("verify", help="check an archive's checksums and its database dump")
    verify.add_argument("archive", type=Path)
    verify.set_defaults(func=run_verify)
    restore = leaves.add_parser(
        "restore", help="restore into the configured database and state dir (daemon stopped)"
    )
    restore.add_argument("archive", type=Path)
    restore.add_argument("--config-to", type=Path,
                         help="also write the archived config file here")
    restore.add_argument("--force", action="store_true",
                         help="replace a database and files that already exist")
    restore.set_defaults(func=run_restore)


def _render(data: dict[str, Any]) -> str:
    rows = [(k.replace("_", " "), ", ".join(v) if isinstance(v, list) and k != "excluded" else v)
            for k, v in data.items() if k != "excluded"]
    excluded = "\n".join(f"  - {line}" for line in data.get("excluded", []))
    return key_values(rows) + (f"\nnot in the backup:\n{excluded}" if excluded else "")


def run_create(args: argparse.Namespace, ctx: CliContext) -> int:
    path, _required = config_path_from(ctx.config_arg)
    result = service.create(ctx.settings, path, args.dir, keep=args.keep)
    ctx.emit(asdict(result), _render)
    return 0


def run_verify(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(asdict(service.verify(args.archive)), _render)
    return 0


def run_restore(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        ctx.call("version", timeout=3.0)
    except NotRunningError:
        pass
    else:
        raise BackupError(
            f"the daemon is running ({ctx.socket_path}); stop it first: systemctl stop reautod"
        )
    result = service.restore(ctx.settings, args.archive, config_to=args.config_to,
                             force=args.force)
    ctx.emit(asdict(result), _render)
    return 0
