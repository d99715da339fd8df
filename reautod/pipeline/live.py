"""One live call as its processors share it: the CallInfo, its state changes, and ending it."""

from __future__ import annotations

from collections.abc import Callable

from reautod.call_events import CallInfo, CallObserver, CallState
from reautod.telephony.stream import CloseCode

_FINAL = (CallState.ENDING, CallState.ENDED)


class LiveCall:
    """Owns `info.state` while the call runs: each change is reported once, and a call that is
    ending never goes back to listening. `end` is the one way a processor ends the call."""

    def __init__(self, info: CallInfo, observer: CallObserver,
                 end: Callable[[str, int], None]) -> None:
        self.info = info
        self.observer = observer
        self._end = end
        self.ended = False

    @property
    def call_id(self) -> str:
        return self.info.call_id

    def set_state(self, state: CallState) -> None:
        if self.info.state in _FINAL and state not in _FINAL:
            return
        if self.info.state != state:
            self.info.state = state
            self.observer.on_call_state(self.info.call_id, state)

    def end(self, reason: str, close_code: int = CloseCode.NORMAL) -> None:
        """End the call now (no goodbye); the first reason given is the call's."""
        if self.ended:
            return
        self.ended = True
        self.set_state(CallState.ENDING)
        self._end(reason, close_code)
