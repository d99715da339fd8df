"""The one exception root of reautod, with stable codes that cross the control socket and the API."""

from __future__ import annotations


class ReautodError(Exception):
    """Base of every error reautod raises on purpose; `code` is stable and machine-readable."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigError(ReautodError):
    """The configuration is invalid; `problems` lists (field path, message) pairs."""

    code = "config_invalid"

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class NotRunningError(ReautodError):
    """The daemon's control socket is absent or refuses connections."""

    code = "not_running"


class AlreadyRunningError(ReautodError):
    """Another daemon already serves the control socket."""

    code = "already_running"


class ProtocolError(ReautodError):
    """A control-socket request or response is malformed."""

    code = "bad_request"


class PermissionDeniedError(ReautodError):
    code = "permission_denied"


class NotFoundError(ReautodError):
    code = "not_found"


class UnavailableError(ReautodError):
    """A dependency (model, database, engine) is missing or down; the message says how to fix it."""

    code = "unavailable"


class OverloadedError(ReautodError):
    """A bounded queue is full; the request was refused, not queued."""

    code = "overloaded"


class EngineError(ReautodError):
    """An inference engine failed or timed out."""

    code = "engine_failed"


class StoreError(ReautodError):
    code = "store_failed"


class ValidationError(ReautodError):
    """Input from outside (CSV, webhook, API body) failed validation."""

    code = "invalid_input"
