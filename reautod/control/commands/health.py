"""`reautoctl health`: each dependency's state and, when broken, how to fix it."""

from __future__ import annotations

import argparse
from typing import Any

from reautod.control.context import CliContext, table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("health", help="per dependency: database, redis, models, http")
    parser.set_defaults(func=run)


def render(h: dict[str, Any]) -> str:
    rows = [
        (name, "ok" if check.get("ok") else "FAIL", check.get("detail", ""))
        for name, check in h.get("checks", {}).items()
    ]
    verdict = "healthy" if h.get("ok") else "degraded"
    return f"{table(['dependency', 'state', 'detail'], rows)}\n\noverall: {verdict}"


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.call("health")
    ctx.emit(result, render)
    return 0 if result.get("ok") else 1
