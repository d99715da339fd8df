"""Circuit breakers: one small interface over `purgatory`, for every external service.

    breakers = Breakers()
    async with breakers.guard("elevenlabs"):
        ...  # a failure here counts; BreakerOpenError is raised while the circuit is open

A circuit opens after `failures` consecutive failures, refuses calls for `recovery_s`, then
lets requests through half-open: the first success closes it, a failure opens it again.
Cancellation (barge-in, hang-up) and a consumer closing a stream early are not failures.
`state(name)` is what health, metrics and the TUI show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from reautod.errors import UnavailableError

BreakerState = Literal["closed", "open", "half_open"]
_STATES: dict[str, BreakerState] = {"closed": "closed", "opened": "open",
                                     "half-opened": "half_open"}


class BreakerOpenError(UnavailableError):
    """The service's circuit is open: the call was not attempted."""

    code = "breaker_open"


class Breakers:
    """Named circuit breakers of one daemon (in-process state)."""

    def __init__(self, *, failures: int = 5, recovery_s: float = 30.0,
                 on_change: Callable[[str, BreakerState], None] | None = None) -> None:
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failures, default_ttl=recovery_s,
            exclude=[asyncio.CancelledError, GeneratorExit])
        self._states: dict[str, BreakerState] = {}
        self._opened_at: dict[str, float] = {}
        self._recovery_s: dict[str, float] = {}
        self._default_recovery_s = recovery_s
        self._on_change = on_change
        self._factory.add_listener(self._listen)

    def _listen(self, name: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            state = _STATES.get(str(event.state), "closed")
            if state == "open":
                self._opened_at[name] = time.monotonic()
            if self._states.get(name) != state:
                self._states[name] = state
                if self._on_change is not None:
                    self._on_change(name, state)

    @asynccontextmanager
    async def guard(self, name: str, *, failures: int | None = None,
                    recovery_s: float | None = None) -> AsyncIterator[None]:
        self._recovery_s[name] = recovery_s or self._default_recovery_s
        breaker = await self._factory.get_breaker(name, failures, recovery_s)
        try:
            async with breaker:
                yield
        except OpenedState as err:
            raise BreakerOpenError(f"{name} circuit is open after repeated failures; "
                                   "retrying after the recovery time") from err

    def state(self, name: str) -> BreakerState:
        """Open until the recovery time has passed, then half-open (the next call is a trial)."""
        state = self._states.get(name, "closed")
        if state == "open" and time.monotonic() - self._opened_at[name] >= self._recovery_s.get(
                name, self._default_recovery_s):
            return "half_open"
        return state

    def states(self) -> dict[str, BreakerState]:
        return {name: self.state(name) for name in self._states}
