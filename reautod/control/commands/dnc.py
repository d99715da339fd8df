"""`reautoctl dnc add|check NUMBER [--campaign X]`: the do-not-call list."""

from __future__ import annotations

import argparse
from typing import Any

from reautod.campaigns.results import DncAddResult, DncCheckResult
from reautod.control.context import CliContext, key_values


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("dnc", help="the do-not-call list: add a number, check one")
    actions = parser.add_subparsers(dest="dnc_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="never call this number again (or not in one campaign)")
    add.add_argument("number")
    add.add_argument("--campaign", help="only for this campaign (default: every campaign)")
    add.add_argument("--reason", help="why (kept with the entry)")
    add.set_defaults(func=run_add)

    check = actions.add_parser("check", help="is this number suppressed, and why")
    check.add_argument("number")
    check.add_argument("--campaign", help="also check this campaign's own list")
    check.set_defaults(func=run_check)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"number": args.number}
    if args.campaign:
        params["campaign"] = args.campaign
    return params


def run_add(args: argparse.Namespace, ctx: CliContext) -> int:
    params = _params(args)
    if args.reason:
        params["reason"] = args.reason
    added = ctx.fetch(DncAddResult, "dnc.add", params)
    ctx.emit(added, lambda a: f"{a.number} is on the "
                              f"{a.campaign + ' campaign' if a.campaign else 'global'} "
                              "do-not-call list")
    return 0


def render_check(check: DncCheckResult) -> str:
    if not check.suppressed:
        return f"{check.number} may be called"
    return key_values([("number", check.number),
                       ("suppressed", check.scope.value if check.scope else None),
                       ("source", check.source.value if check.source else None),
                       ("reason", check.reason),
                       ("since", check.since.isoformat() if check.since else None)])


def run_check(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(DncCheckResult, "dnc.check", _params(args)), render_check)
    return 0
