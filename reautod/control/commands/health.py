"""`reautoctl health`: each dependency's state and, when broken, how to fix it."""

from __future__ import annotations

import argparse

from reautod.control.context import CliContext, table
from reautod.control.results import HealthReport


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("health", help="per dependency: database, redis, models, http")
    parser.set_defaults(func=run)


def render(h: HealthReport) -> str:
    rows = [(name, "ok" if check.ok else "FAIL", check.detail) for name, check in h.checks.items()]
    verdict = "healthy" if h.ok else "degraded"
    return f"{table(['dependency', 'state', 'detail'], rows)}\n\noverall: {verdict}"


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.fetch(HealthReport, "health")
    ctx.emit(result, render)
    return 0 if result.ok else 1
