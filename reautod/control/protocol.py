"""The control protocol: newline-delimited JSON over a Unix stream socket.

Request:  {"id": 1, "method": "status", "params": {}}
Response: {"id": 1, "result": {...}}  or  {"id": 1, "error": {"code": "...", "message": "..."}}
Event:    {"event": "call.started", "ts": "2026-11-21T10:00:00+00:00", "data": {...}}
          (only on a connection that called `subscribe`, until the client leaves)

See docs/control-protocol.md. Bump PROTOCOL_VERSION when a method changes incompatibly.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1024 * 1024  # a longer request line is refused and the connection closed


class NoParams(BaseModel):
    """Params of a method that takes none; unknown params are an error."""

    model_config = ConfigDict(extra="forbid")


Handler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    """One entry of the method table: name, params schema, async handler returning JSON-able data."""

    name: str
    handler: Handler
    params: type[BaseModel] = NoParams
    summary: str = ""
    streams: bool = False  # True only for `subscribe`


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def error_body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}
