"""reautoctl subcommand groups, one module each; `cli.build_parser` registers them in this order."""

from __future__ import annotations

from types import ModuleType

from reautod.control.commands import config, daemon, health, status, version

COMMAND_GROUPS: list[ModuleType] = [status, health, config, version, daemon]
