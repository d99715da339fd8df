"""`reautoctl audit [list] [--since WHEN] [--limit N]`, `reautoctl audit verify` (or `audit
--verify`): the hash-chained audit log.

`--verify` walks the whole chain and exits 1 naming the first entry that does not fit; note the
head hash it prints somewhere outside this box to prove later that nothing before it changed.
"""

from __future__ import annotations

import argparse
from typing import Any

from reautod.control.context import CliContext, key_values, table
from reautod.security.results import AuditList, ChainVerdict
from reautod.security.text import terminal_safe


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="who changed what, when, from where (hash-chained)")
    _list_args(parser)
    parser.add_argument("--verify", action="store_true",
                        help="prove the chain unbroken (exit 1 at the first broken entry)")
    parser.set_defaults(func=run, verify=False)
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    listing = actions.add_parser("list", help="entries, newest first (the default)")
    _list_args(listing)
    listing.set_defaults(func=run, verify=False)
    verify = actions.add_parser("verify", help="prove the chain unbroken (exit 1 if not)")
    verify.set_defaults(func=run, verify=True)


def _list_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="WHEN", help="entries at or after (YYYY-MM-DD or ISO)")
    parser.add_argument("--limit", type=int, default=100, help="newest N entries (default 100)")


def _cell(value: object) -> str:
    return terminal_safe("-" if value is None else str(value))


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.verify:
        verdict = ctx.fetch(ChainVerdict, "audit.verify", timeout=600.0)
        ctx.emit(verdict.model_dump(), lambda _d: key_values([
            ("chain", "intact" if verdict.ok else "BROKEN"), ("entries checked", verdict.entries),
            *([("first bad entry", verdict.first_bad_id), ("problem", _cell(verdict.problem))]
              if not verdict.ok else []),
            ("head hash" if verdict.ok else "last good hash", verdict.head_hash),
            ("pruned through", verdict.starts_after),
        ]))
        return 0 if verdict.ok else 1
    params: dict[str, Any] = {"limit": args.limit}
    if args.since:
        params["since"] = args.since
    listed = ctx.fetch(AuditList, "audit.list", params)
    ctx.emit(listed.model_dump(mode="json"), lambda _d: table(
        ["ID", "AT", "ACTOR", "FROM", "ACTION", "RESULT", "TARGET"],
        [[e.id, f"{e.at:%Y-%m-%d %H:%M:%S}", _cell(e.actor), _cell(e.origin), _cell(e.action),
          _cell(e.outcome),
          _cell(f"{e.target_type}:{e.target_id}" if e.target_type else e.target_id)]
         for e in listed.entries]))
    return 0
