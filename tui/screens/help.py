"""Every key binding, one screen."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

HELP_ROWS = [
    ("Anywhere", ""),
    ("?", "this help"),
    ("d", "dashboard"),
    ("c", "campaigns"),
    ("l", "log"),
    ("D", "drain the daemon (finish live calls, take no new ones, exit)"),
    ("escape", "back"),
    ("q", "quit the TUI (the daemon keeps running)"),
    ("Dashboard", ""),
    ("up/down", "select a call"),
    ("enter", "open the call: live transcript and latencies"),
    ("h", "hang up the selected call"),
    ("t", "transfer the selected call to a human"),
    ("Call detail", ""),
    ("h / t", "hang up / transfer this call"),
    ("Campaigns", ""),
    ("p / r", "pause / resume the selected campaign"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2))
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        for key, does in HELP_ROWS:
            if does:
                table.add_row(key, does)
            else:
                table.add_row(f"[underline]{key}[/]", "")
        with Vertical(id="help-dialog"):
            yield Label("reautod TUI: keys", id="help-title")
            yield Static(table)
            yield Label("Every action asks for confirmation first.  escape closes this.",
                        id="help-footer")
