"""`reautoctl keys generate|status|rotate`: the master keys that wrap recordings' data keys.

`generate` runs here and prints a new key for the `encryption_key` credential (first line: the
current key; keep the old one on the next line until `rotate` says no file needs it).
"""

from __future__ import annotations

import argparse

from reautod.control.context import CliContext, key_values
from reautod.security.keys import generate_key_text
from reautod.security.results import KeyStatus, RotationReport
from reautod.security.text import terminal_safe


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("keys", help="encryption keys of recordings: status, rotation")
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = actions.add_parser("generate", help="print a new random master key")
    generate.set_defaults(func=run_generate)
    status = actions.add_parser("status", help="which key wraps how many recordings")
    status.set_defaults(func=run_status)
    rotate = actions.add_parser("rotate", help="re-wrap every recording under the current key")
    rotate.set_defaults(func=run_rotate)


def run_generate(args: argparse.Namespace, ctx: CliContext) -> int:
    key = generate_key_text()
    ctx.emit({"key": key}, lambda _d: key)
    return 0


def _files(paths: list[str]) -> str:
    return terminal_safe(", ".join(paths)) if paths else "none"


def run_status(args: argparse.Namespace, ctx: CliContext) -> int:
    status = ctx.fetch(KeyStatus, "keys.status", timeout=600.0)
    ctx.emit(status.model_dump(), lambda _d: key_values([
        ("current key", status.current), ("older keys", ", ".join(status.older) or "none"),
        *((f"files wrapped by {key}", n) for key, n in sorted(status.files_by_key.items())),
        ("unreadable files", _files(status.unreadable)),
        ("unencrypted recordings", status.plain_files),
    ]))
    return 0


def run_rotate(args: argparse.Namespace, ctx: CliContext) -> int:
    report = ctx.fetch(RotationReport, "keys.rotate", timeout=600.0)
    ctx.emit(report.model_dump(), lambda _d: key_values([
        ("current key", report.current), ("re-wrapped", report.rewrapped),
        ("already current", report.already_current),
        ("unreadable files", _files(report.unreadable)),
        ("older keys still needed", ", ".join(report.older_keys_still_needed)
         or "none: they can leave the credential"),
    ]))
    return 0 if not report.unreadable else 1
