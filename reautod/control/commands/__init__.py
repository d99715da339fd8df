"""reautoctl subcommand groups, one module each; `cli.build_parser` registers them in this order."""

from __future__ import annotations

from types import ModuleType

from reautod.control.commands import (
    audit,
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
    keys,
    metrics,
    models,
    outbox,
    playbook,
    privacy,
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
    outbox,
    budget,
    playbook,
    db,
    export,
    sheets,
    backup,
    privacy,
    audit,
    keys,
    stats,
    config,
    daemon,
    version,
]
