"""What every reautoctl command gets: settings, socket path, output mode, and a daemon call helper."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from reautod.config import Settings, config_path_from, load_settings
from reautod.control.client import ControlClient
from reautod.errors import ProtocolError
from reautod.security.text import terminal_safe

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_NOT_RUNNING = 3
_Result = TypeVar("_Result", bound=BaseModel)


@dataclass
class CliContext:
    config_arg: str | None
    socket_arg: str | None
    json: bool
    out: TextIO = field(default_factory=lambda: sys.stdout)
    _settings: Settings | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CliContext:
        return cls(config_arg=args.config, socket_arg=args.socket, json=bool(args.json))

    @property
    def settings(self) -> Settings:
        """The same settings the daemon reads (same file, same environment)."""
        if self._settings is None:
            path, required = config_path_from(self.config_arg)
            self._settings = load_settings(path, required=required)
        return self._settings

    @property
    def socket_path(self) -> Path:
        if self.socket_arg:
            return Path(self.socket_arg)
        return self.settings.socket_path()

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """Call one daemon method and return its result (raises NotRunningError, ReautodError)."""

        async def _call() -> Any:
            async with ControlClient(self.socket_path, timeout=timeout) as client:
                return await client.call(method, params or {})

        return asyncio.run(_call())

    def fetch(self, model: type[_Result], method: str, params: dict[str, Any] | None = None,
              timeout: float = 30.0) -> _Result:
        """Call a method and parse its typed result (the model the daemon answers with); a
        reply of another shape (a daemon of another version) is a clear error, not a crash."""
        return parse_result(model, method, self.call(method, params, timeout))

    def emit_json(self, data: Any) -> None:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        self.out.write(json.dumps(data, indent=2, default=str) + "\n")

    def emit(self, data: Any, render: Callable[[Any], str]) -> None:
        """Print `data` as JSON with --json, else as `render(data)`."""
        if self.json:
            self.emit_json(data)
        else:
            self.out.write(render(data).rstrip("\n") + "\n")


def parse_result(model: type[_Result], method: str, data: Any) -> _Result:
    """A method's answer parsed with its result model; a reply of another shape (a daemon of
    another version) is a clear error, not a traceback."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as err:
        raise ProtocolError(f"{method} answered a shape this reautoctl does not know "
                            f"(another version?): {err}", code="unexpected_result") from err


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table; every cell terminal-safe (names and words come from leads,
    imports and callers: a control character must not reach the operator's terminal)."""
    cells = [[str(h) for h in headers],
             *[["" if c is None else terminal_safe(str(c)) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """Aligned `key  value` lines, terminal-safe (see `table`); a value's own line breaks stay."""
    safe = [(terminal_safe(str(k)), "-" if v is None else terminal_safe(str(v), keep_newlines=True))
            for k, v in pairs]
    width = max((len(k) for k, _ in safe), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in safe)
