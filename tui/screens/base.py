"""What every TUI screen shares: the live state, a refresh hook, and a way to ask for an action."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textual.message import Message
from textual.screen import Screen

from tui.model import LiveState
from tui.screens.confirm import ConfirmScreen


class RequestAction(Message):
    """A confirmed operator action; the App sends it to the daemon and reports the result."""

    def __init__(self, method: str, params: Mapping[str, Any], done: str) -> None:
        super().__init__()
        self.method = method
        self.params = dict(params)
        self.done = done


class StateScreen(Screen[None]):
    """A screen drawn from `LiveState`; the App calls `refresh_view()` after every change."""

    def __init__(self, state: LiveState) -> None:
        super().__init__()
        self.state = state

    def refresh_view(self) -> None:
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        # after the next layout pass, so logs wrap at their real width on a first show
        self.call_after_refresh(self.refresh_view)

    def confirm_then(self, question: str, method: str, params: Mapping[str, Any], done: str) -> None:
        """Ask; on yes, post the action for the App to send."""

        def answered(ok: bool | None) -> None:
            if ok:
                self.post_message(RequestAction(method, params, done))

        self.app.push_screen(ConfirmScreen(question), answered)
