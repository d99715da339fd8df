"""`reautoctl reload` and `reautoctl drain`: lifecycle requests to the running daemon."""

from __future__ import annotations

import argparse

from reautod.control.context import CliContext, key_values
from reautod.control.results import DrainResult, ReloadResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reload = sub.add_parser("reload", help="re-read and validate the config (like SIGHUP)")
    reload.set_defaults(func=run_reload)
    drain = sub.add_parser("drain", help="stop taking calls, let live calls finish, then stop")
    drain.set_defaults(func=run_drain)


def run_reload(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.fetch(ReloadResult, "daemon.reload")
    ctx.emit(result, lambda r: key_values([("reloaded", r.reloaded), ("detail", r.detail)]))
    return 0 if result.reloaded else 1


def run_drain(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.fetch(DrainResult, "daemon.drain")
    ctx.emit(result, lambda r: key_values([("draining", r.draining),
                                           ("live calls", r.live_calls)]))
    return 0
