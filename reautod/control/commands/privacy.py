"""`reautoctl privacy export|erase|requests|check`: subject requests (GDPR, UK GDPR, CCPA).

The daemon does the work (it holds the encryption key to decrypt recordings and the session
store to clear); the archive is written under its state directory, and `--out` copies it here.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path
from typing import Any

from reautod.control.context import CliContext, key_values, table
from reautod.errors import ValidationError
from reautod.security.results import (
    ErasureReceipt,
    ErasureStatus,
    ExportResult,
    PrivacyRequestList,
)
from reautod.security.text import terminal_safe
from reautod.store.enums import PrivacyRegime

LONG_CALL_S = 600.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("privacy", help="subject requests: export or erase a person's data")
    actions = parser.add_subparsers(dest="privacy_command", metavar="ACTION", required=True)

    export = actions.add_parser("export", help="everything held about a number, as a zip")
    _subject_args(export)
    export.add_argument("--out", type=Path, help="copy the archive to this file")
    export.set_defaults(func=run_export)

    erase = actions.add_parser("erase", help="erase a number everywhere (cannot be undone)")
    _subject_args(erase)
    erase.add_argument("--yes", action="store_true", help="yes, erase it")
    erase.set_defaults(func=run_erase)

    requests = actions.add_parser("requests", help="subject requests and their due dates")
    requests.add_argument("--open", action="store_true", help="only those not answered yet")
    requests.set_defaults(func=run_requests)

    check = actions.add_parser("check", help="was this number erased")
    check.add_argument("number", help="E.164, like +15551234567")
    check.set_defaults(func=run_check)


def _subject_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="the person's number in E.164, like +15551234567")
    parser.add_argument("--regime", choices=[r.value for r in PrivacyRegime],
                        default=PrivacyRegime.GDPR.value,
                        help="the law the request is made under (sets the due dates)")
    parser.add_argument("--received", metavar="WHEN",
                        help="when the request came in (YYYY-MM-DD or ISO time; default now)")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"number": args.number, "regime": args.regime}
    if args.received:
        params["received_at"] = args.received
    return params


def _safe(value: object) -> str:
    return terminal_safe("-" if value is None else str(value))


def run_export(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.fetch(ExportResult, "privacy.export", _params(args), timeout=LONG_CALL_S)
    if args.out is not None:
        _copy_checked(Path(result.path), args.out, result.sha256)
    ctx.emit(result.model_dump(mode="json"), lambda _d: key_values([
        ("request", result.request_id), ("archive", _safe(args.out or result.path)),
        ("size", f"{result.size_bytes} bytes"), ("sha256", result.sha256),
        ("rows", sum(result.rows.values())), ("recordings", result.recordings),
        ("unreadable recordings", result.recordings_unreadable),
        ("received", result.deadline.received_at), ("due", result.deadline.due_at),
    ]))
    return 0


def _copy_checked(source: Path, target: Path, sha256: str) -> None:
    try:
        shutil.copyfile(source, target)
    except OSError as err:
        raise ValidationError(f"cannot copy the archive from {source}: {err.strerror} (run "
                              "reautoctl as a member of the daemon's group)") from err
    digest = hashlib.sha256()
    with target.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ValidationError(f"the copy at {target} does not match the archive's checksum")


def run_erase(args: argparse.Namespace, ctx: CliContext) -> int:
    if not args.yes:
        raise ValidationError(f"erasing {args.number} cannot be undone: add --yes")
    receipt = ctx.fetch(ErasureReceipt, "privacy.erase", _params(args) | {"confirm": True},
                        timeout=LONG_CALL_S)
    ctx.emit(receipt.model_dump(mode="json"), lambda _d: key_values([
        ("request", receipt.request_id), ("kept", f"salted hash {receipt.subject_hash}"),
        ("rows removed", sum(receipt.rows_removed.values())),
        ("recording files removed", receipt.recording_files_removed),
        ("export archives removed", receipt.export_archives_removed),
        *((f"{name} removed", count) for name, count in receipt.other_holders.items()),
        *((f"notify {name}", ", ".join(refs))
          for name, refs in receipt.processors_to_notify.items()),
        ("due", receipt.deadline.due_at), ("completed", receipt.completed_at),
    ]))
    return 0


def run_requests(args: argparse.Namespace, ctx: CliContext) -> int:
    listed = ctx.fetch(PrivacyRequestList, "privacy.requests", {"open_only": bool(args.open)})
    ctx.emit(listed.model_dump(mode="json"), lambda _d: table(
        ["REQUEST", "KIND", "LAW", "RECEIVED", "ACKNOWLEDGE BY", "DUE", "STATUS"],
        [[r.request_id, r.kind, r.deadline.regime.value, f"{r.deadline.received_at:%Y-%m-%d}",
          f"{r.deadline.acknowledge_by:%Y-%m-%d}" if r.deadline.acknowledge_by else "-",
          f"{r.deadline.due_at:%Y-%m-%d}", _safe(r.status + (" OVERDUE" if r.overdue else ""))]
         for r in listed.requests]))
    return 0


def run_check(args: argparse.Namespace, ctx: CliContext) -> int:
    status = ctx.fetch(ErasureStatus, "privacy.check", {"number": args.number})
    ctx.emit(status.model_dump(), lambda _d: f"{_safe(args.number)} "
             f"{'was erased: it is never dialed or imported' if status.erased else 'was not erased'}")
    return 0
