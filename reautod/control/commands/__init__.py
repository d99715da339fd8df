"""reautoctl's subcommand groups, one module each in this package.

`COMMANDS` names each top-level command and the module that registers it, in `reautoctl --help`
order. `reautoctl X` imports only X's module: a command's start-up time is its imports, and most
groups pull in what their result models need (SQLAlchemy rows, settings) that others do not.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS: dict[str, str] = {
    "status": "status",
    "health": "health",
    "top": "top",
    "events": "events",
    "metrics": "metrics",
    "models": "models",
    "call": "call",
    "talk": "talk",
    "campaign": "campaign",
    "dial": "dial",
    "dnc": "dnc",
    "seed": "seed",
    "outbox": "outbox",
    "budget": "budget",
    "playbook": "playbook",
    "db": "db",
    "export": "export",
    "sheets": "sheets",
    "backup": "backup",
    "privacy": "privacy",
    "audit": "audit",
    "keys": "keys",
    "token": "token",
    "stats": "stats",
    "config": "config",
    "reload": "daemon",
    "drain": "daemon",
    "version": "version",
}


def groups(command: str | None = None) -> list[ModuleType]:
    """The group modules to register: `command`'s alone when it is one, else every group."""
    names = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    return [importlib.import_module(f"{__name__}.{name}") for name in names]
