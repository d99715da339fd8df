"""reautoctl subcommand groups, one module each; `cli.build_parser` registers them in this order."""

from __future__ import annotations

from types import ModuleType

from reautod.control.commands import (
    backup,
    budget,
    call,
    campaign,
    config,
    daemon,
    db,
    dial,
    dnc,
    events,
    export,
    health,
    metrics,
    models,
    outbox,
    playbook,
    seed,
    sheets,
    stats,
    status,
    top,
    version,
)

COMMAND_GROUPS: list[ModuleType] = [
    status,
    health,
    top,
    events,
    metrics,
    models,
    call,
    campaign,
    dial,
    dnc,
    seed,
    outbox,
    budget,
    playbook,
    db,
    export,
    sheets,
    backup,
    stats,
    config,
    daemon,
    version,
]
