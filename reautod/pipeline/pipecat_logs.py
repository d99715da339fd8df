"""pipecat logs through loguru (DEBUG to stderr by default); route it into stdlib logging.

The daemon calls `route_pipecat_logs()` once at start-up, after its own logging setup, so
pipecat's records go through the same handlers (journald, redaction) at the chosen level.
"""

from __future__ import annotations

import logging
from typing import Any

from loguru import logger as loguru_logger

_PIPECAT = logging.getLogger("pipecat")


def _sink(message: Any) -> None:
    record = message.record
    level = logging.getLevelName(record["level"].name)
    if not isinstance(level, int):
        level = logging.INFO
    _PIPECAT.log(level, "%s", record["message"])


def route_pipecat_logs(level: str = "WARNING") -> None:
    """Replace loguru's default stderr sink with one into the `pipecat` stdlib logger."""
    loguru_logger.remove()
    loguru_logger.add(_sink, level=level, format="{message}")
