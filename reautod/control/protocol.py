"""The control protocol: newline-delimited JSON over a Unix stream socket.

Request:  {"id": 1, "method": "status", "params": {}}
Response: {"id": 1, "result": {...}}  or  {"id": 1, "error": {"code": "...", "message": "..."}}
Event:    {"event": "call.started", "ts": "2026-11-21T10:00:00+00:00", "data": {...}}
          (only on a connection that called `subscribe`, until the client leaves)

See docs/control-protocol.md. Bump PROTOCOL_VERSION when a method changes incompatibly.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1024 * 1024  # a longer request line is refused and the connection closed


def _default(value: Any) -> Any:
    """Typed results (pydantic models) as their JSON form; anything else as its str()."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def encode_result(result: Any) -> bytes:
    """A method's result as JSON, as the socket sends it (the admin API answers with this too)."""
    return json.dumps(result, separators=(",", ":"), default=_default).encode()


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=_default).encode() + b"\n"


def error_body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}
