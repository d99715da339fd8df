"""`reautoctl status`: what the daemon is, where, and how busy."""

from __future__ import annotations

import argparse
from typing import Any

from reautod.control.context import CliContext, key_values


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status", help="daemon version, pid, uptime, paths, backends, ports, live calls"
    )
    parser.set_defaults(func=run)


def render(s: dict[str, Any]) -> str:
    return key_values(
        [
            ("state", s.get("state")),
            ("version", s.get("version")),
            ("pid", s.get("pid")),
            ("uptime", _duration(float(s.get("uptime_s") or 0))),
            ("socket", s.get("socket")),
            ("state dir", s.get("state_dir")),
            ("database", s.get("database_backend")),
            ("session store", s.get("session_backend")),
            ("http_port", s.get("http_port")),
            ("metrics_port", s.get("metrics_port")),
            ("live calls", s.get("live_calls")),
        ]
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.call("status"), render)
    return 0
