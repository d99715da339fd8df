"""`reautoctl config show`: the daemon's effective configuration, secrets redacted."""

from __future__ import annotations

import argparse
import json

from reautod.control.context import CliContext
from reautod.control.results import EffectiveConfig


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("config", help="configuration")
    leaves = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = leaves.add_parser(
        "show", help="the running daemon's effective config (secrets redacted)"
    )
    show.set_defaults(func=run_show)


def render(config: EffectiveConfig) -> str:
    data = config.root
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for key, value in scalars.items():
        lines.append(f"{key} = {json.dumps(value)}")
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items())
    return "\n".join(lines)


def run_show(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(EffectiveConfig, "config.show"), render)
    return 0
