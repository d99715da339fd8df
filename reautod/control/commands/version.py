"""`reautoctl version`: this client's version and, when reachable, the daemon's."""

from __future__ import annotations

import argparse
from importlib.metadata import version as package_version

from reautod.control.context import CliContext, key_values
from reautod.control.protocol import PROTOCOL_VERSION
from reautod.control.results import VersionResult
from reautod.errors import NotRunningError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("version", help="client and daemon versions")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    daemon: VersionResult | None
    try:
        daemon = ctx.fetch(VersionResult, "version")
    except NotRunningError:
        daemon = None  # the client version is still useful without a daemon
    data = {"reautoctl": package_version("reautod"), "protocol": PROTOCOL_VERSION,
            "daemon": daemon.model_dump(mode="json") if daemon else None}
    ctx.emit(
        data,
        lambda d: key_values(
            [
                ("reautoctl", d["reautoctl"]),
                ("protocol", d["protocol"]),
                ("reautod", daemon.version if daemon else "not running"),
            ]
        ),
    )
    return 0
