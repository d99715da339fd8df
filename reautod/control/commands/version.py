"""`reautoctl version`: this client's version and, when reachable, the daemon's."""

from __future__ import annotations

import argparse
from importlib.metadata import version as package_version

from reautod.control.context import CliContext, key_values
from reautod.control.protocol import PROTOCOL_VERSION
from reautod.errors import NotRunningError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("version", help="client and daemon versions")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    data: dict[str, object] = {
        "reautoctl": package_version("reautod"),
        "protocol": PROTOCOL_VERSION,
    }
    try:
        data["daemon"] = ctx.call("version")
    except NotRunningError:
        data["daemon"] = None  # the client version is still useful without a daemon
    ctx.emit(
        data,
        lambda d: key_values(
            [
                ("reautoctl", d["reautoctl"]),
                ("protocol", d["protocol"]),
                ("reautod", (d["daemon"] or {}).get("version", "not running")),
            ]
        ),
    )
    return 0
