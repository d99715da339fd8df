"""The control-method contract every part may import: a method's name, params model and handler.

A leaf beside `errors.py`: parts (engines, pipeline, store, outbound, ...) describe the methods
they add to the control socket with `Method`; `control/` serves them and knows nothing of the parts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class NoParams(BaseModel):
    """Params of a method that takes none; unknown params are an error."""

    model_config = ConfigDict(extra="forbid")


Handler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    """One entry of the method table: name, params schema, async handler returning its result."""

    name: str
    handler: Handler
    params: type[BaseModel] = NoParams
    summary: str = ""
    streams: bool = False  # True only for `subscribe`
    # True for methods that change state: the transport writes each call to the audit log
    changes_state: bool = False
