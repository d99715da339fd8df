"""Circuit breakers: one small interface over `purgatory`, for every external service.

    breakers = Breakers()
    async with breakers.guard("elevenlabs", permanent=is_client_error):
        ...  # a failure here counts; BreakerOpenError is raised while the circuit is open

A circuit opens after `failures` consecutive failures and refuses calls for `recovery_s`; then
one call at a time goes through half-open (the probe): its success closes the circuit, its
failure opens it again, and calls arriving while the probe is out are refused as if open.
What counts as a failure: any exception except cancellation (barge-in, hang-up), a consumer
closing a stream early, and what `permanent` says the service answered on purpose (a 4xx: the
service is up, retrying or opening the circuit would not help).
`state(name)` is what health, metrics and the TUI show; `on_change` hears every transition.
"""

from __future__ import annotations

import asyncio
import contextlib
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

    def __init__(self, message: str, *, retry_in_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


class _Recorded(Exception):
    """A failure recorded after the fact (Breakers.record)."""


def _never(_err: BaseException) -> bool:
    return False


class Breakers:
    """Named circuit breakers of one daemon (in-process state)."""

    def __init__(self, *, failures: int = 5, recovery_s: float = 30.0,
                 on_change: Callable[[str, BreakerState], None] | None = None) -> None:
        self._factory = AsyncCircuitBreakerFactory(default_threshold=failures,
                                                   default_ttl=recovery_s)
        self._states: dict[str, BreakerState] = {}
        self._opened_at: dict[str, float] = {}
        self._recovery_s: dict[str, float] = {}
        self._probing: set[str] = set()
        self._default_recovery_s = recovery_s
        self._listeners: list[Callable[[str, BreakerState], None]] = (
            [on_change] if on_change is not None else [])
        self._factory.add_listener(self._listen)

    def add_listener(self, on_change: Callable[[str, BreakerState], None]) -> None:
        self._listeners.append(on_change)

    def _listen(self, name: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            state = _STATES.get(str(event.state), "closed")
            if state == "open":
                self._opened_at[name] = time.monotonic()
            if self._states.get(name) != state:
                self._states[name] = state
                for listener in self._listeners:
                    listener(name, state)

    @asynccontextmanager
    async def guard(self, name: str, *, failures: int | None = None,
                    recovery_s: float | None = None,
                    permanent: Callable[[BaseException], bool] = _never) -> AsyncIterator[None]:
        """Run the block through circuit `name`; raises BreakerOpenError instead while open."""
        self._recovery_s[name] = recovery_s or self._default_recovery_s
        probe = self.state(name) != "closed"
        if probe and name in self._probing:
            raise self._open_error(name)
        breaker = await self._factory.get_breaker(name, failures, recovery_s)
        if probe:
            self._probing.add(name)
        # Cancellation, a closed generator and what `permanent` names leave the block as a
        # success (the service answered), decided here per call rather than in the circuit's
        # shared exclude list, which concurrent callers with other classifiers would race on.
        held: BaseException | None = None
        try:
            async with breaker:
                try:
                    yield
                except (asyncio.CancelledError, GeneratorExit) as err:
                    held = err
                except Exception as err:
                    if not permanent(err):
                        raise
                    held = err
        except OpenedState as err:
            raise self._open_error(name) from err
        finally:
            if probe:
                self._probing.discard(name)
        if held is not None:
            raise held

    async def record(self, name: str, *, failed: bool, failures: int | None = None,
                     recovery_s: float | None = None) -> None:
        """Count the outcome of a call made outside `guard` (a stream judged when it ended);
        while the circuit is open and not yet due for a probe, nothing changes."""
        self._recovery_s[name] = recovery_s or self._default_recovery_s
        breaker = await self._factory.get_breaker(name, failures, recovery_s)
        with contextlib.suppress(OpenedState, _Recorded):
            async with breaker:
                if failed:
                    raise _Recorded(name)

    def _open_error(self, name: str) -> BreakerOpenError:
        return BreakerOpenError(f"{name} circuit is open after repeated failures; retrying after "
                                "the recovery time", retry_in_s=self.retry_in(name))

    def retry_in(self, name: str) -> float:
        """Seconds until an open circuit lets a probe through (0 when it would now)."""
        if self._states.get(name) != "open":
            return 0.0
        recovery = self._recovery_s.get(name, self._default_recovery_s)
        return max(0.0, self._opened_at[name] + recovery - time.monotonic())

    def state(self, name: str) -> BreakerState:
        """Open until the recovery time has passed, then half-open (the next call is a probe)."""
        state = self._states.get(name, "closed")
        if state == "open" and self.retry_in(name) <= 0:
            return "half_open"
        return state

    def states(self) -> dict[str, BreakerState]:
        return {name: self.state(name) for name in self._states}
