"""The control-method contract every part may import: a method's name, params model, handler and
result model.

A leaf beside `errors.py`: parts (engines, pipeline, store, outbound, ...) describe the methods
they add to the control socket with `Method`; `control/` serves them and knows nothing of the parts.

Every method answers with a pydantic model (`Method.result`): the handler's return annotation
names it, so the contract is written once, where the handler is. The control socket refuses an
answer of another type (a bug, not a client's problem); `reautoctl`, the TUI and the admin API's
OpenAPI document read the same models.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from reautod.errors import ReautodError

log = logging.getLogger(__name__)


class NoParams(BaseModel):
    """Params of a method that takes none; unknown params are an error."""

    model_config = ConfigDict(extra="forbid")


Handler = Callable[[Any], Awaitable[Any]]


def annotated_result(handler: Handler) -> type[BaseModel] | None:
    """The pydantic model `handler`'s return annotation names; None when it names none (or a
    name that does not resolve from the handler's module)."""
    try:
        hints = typing.get_type_hints(handler)
    except (NameError, TypeError):
        return None
    answer = hints.get("return")
    return answer if isinstance(answer, type) and issubclass(answer, BaseModel) else None


@dataclass(frozen=True)
class Method:
    """One entry of the method table: name, params schema, async handler returning its result
    (an instance of `result`, by default the model the handler's return annotation names)."""

    name: str
    handler: Handler
    params: type[BaseModel] = NoParams
    summary: str = ""
    streams: bool = False  # True only for `subscribe`
    # True for methods that change state: the transport writes each call to the audit log
    changes_state: bool = False
    result: type[BaseModel] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.result is None:
            object.__setattr__(self, "result", annotated_result(self.handler))

    def checked(self, answer: Any) -> Any:
        """`answer` if it is the method's result model; a handler that broke the contract is
        a bug here, answered as an internal error rather than sent in a shape clients refuse."""
        if self.result is not None and not isinstance(answer, self.result):
            log.error("control method %s answered %s, not its %s", self.name,
                      type(answer).__name__, self.result.__name__)
            raise ReautodError(f"{self.name} answered an untyped result")
        return answer
