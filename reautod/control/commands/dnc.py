"""`reautoctl dnc add|check NUMBER [--campaign X]`: the do-not-call list."""

from __future__ import annotations

import argparse
from typing import Any

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
    data = ctx.call("dnc.add", params)
    ctx.emit(data, lambda d: f"{d['number']} is on the "
                             f"{d['campaign'] + ' campaign' if d.get('campaign') else 'global'} "
                             "do-not-call list")
    return 0


def render_check(data: dict[str, Any]) -> str:
    if not data.get("suppressed"):
        return f"{data.get('number')} may be called"
    return key_values([("number", data.get("number")), ("suppressed", data.get("scope")),
                       ("source", data.get("source")), ("reason", data.get("reason")),
                       ("since", data.get("since"))])


def run_check(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.call("dnc.check", _params(args)), render_check)
    return 0
