"""The log pane: WARNING+ lines from the daemon, health and daemon state changes."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, Label

from tui.screens.base import StateScreen
from tui.widgets.log_view import LogView


class LogScreen(StateScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="box", id="log-box"):
            yield Label("Log (WARNING and above, health, daemon state)", classes="box-title")
            yield LogView(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        self.query_one(LogView).show(self.state.log)
