"""`reautoctl status`: what the daemon is, where, and how busy."""

from __future__ import annotations

import argparse

from reautod.control.context import CliContext, key_values
from reautod.control.results import DaemonStatus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status", help="daemon version, pid, uptime, paths, backends, ports, live calls"
    )
    parser.set_defaults(func=run)


def render(s: DaemonStatus) -> str:
    return key_values(
        [
            ("state", s.state),
            ("version", s.version),
            ("pid", s.pid),
            ("uptime", _duration(s.uptime_s)),
            ("socket", s.socket),
            ("state dir", s.state_dir),
            ("database", s.database_backend),
            ("session store", s.session_backend),
            ("http_port", s.http_port),
            ("metrics_port", s.metrics_port),
            ("live calls", s.live_calls),
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
    ctx.emit(ctx.fetch(DaemonStatus, "status"), render)
    return 0
