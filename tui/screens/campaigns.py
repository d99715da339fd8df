"""Campaigns: progress, pacing, spend; pause and resume."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, Label

from tui.screens.base import StateScreen
from tui.widgets.tables import CampaignsTable


class CampaignsScreen(StateScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="box", id="campaigns-box"):
            yield Label("Campaigns", classes="box-title", id="campaigns-title")
            yield CampaignsTable(id="campaigns")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        self.query_one(CampaignsTable).show(self.state.campaigns)
        if not self.state.campaigns:
            self.query_one("#campaigns-title", Label).update("Campaigns (none)")
        else:
            self.query_one("#campaigns-title", Label).update(
                f"Campaigns ({len(self.state.campaigns)})")

    def _selected(self) -> str | None:
        name = self.query_one(CampaignsTable).selected_key
        if name is None:
            self.notify("No campaign selected", severity="warning")
        return name

    def action_pause(self) -> None:
        name = self._selected()
        if name is not None:
            self.confirm_then(f"Pause campaign {name}? Live calls finish; no new dials.",
                              "campaign.pause", {"campaign": name}, f"Paused {name}")

    def action_resume(self) -> None:
        name = self._selected()
        if name is not None:
            self.confirm_then(f"Resume campaign {name}?", "campaign.resume", {"campaign": name},
                              f"Resumed {name}")
