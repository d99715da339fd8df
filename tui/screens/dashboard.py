"""The dashboard: live calls, health, rolling latency percentiles, calls per outcome today."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Label, Static

from tui.model import LATENCY_STAGES
from tui.screens.base import StateScreen
from tui.widgets.panels import HealthPanel, LatencyPanel, OutcomesPanel
from tui.widgets.tables import CallsTable


class DashboardScreen(StateScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_call", "Call detail", show=False),
        Binding("h", "hangup", "Hang up"),
        Binding("t", "transfer", "Transfer"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="banner")
        with Vertical(id="calls-box", classes="box"):
            yield Label("Live calls", classes="box-title", id="calls-title")
            yield CallsTable(id="calls")
        with Horizontal(id="panels"):
            with Vertical(classes="box", id="health-box"):
                yield Label("Health", classes="box-title")
                yield HealthPanel(id="health")
            with Vertical(classes="box", id="latency-box"):
                yield Label("Turn latency", classes="box-title")
                yield LatencyPanel(id="latency")
            with Vertical(classes="box", id="outcomes-box"):
                yield Label("Calls today", classes="box-title")
                yield OutcomesPanel(id="outcomes")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        state = self.state
        banner = self.query_one("#banner", Static)
        banner.display = not state.connected
        banner.update(f"Not connected to reautod: {state.disconnect_reason or 'connecting'}. "
                      "Retrying by itself; the figures below are the last known.")
        calls = list(state.calls.values())
        self.query_one(CallsTable).show(calls, state.duration_s)
        self.query_one("#calls-title", Label).update(f"Live calls ({len(calls)})")
        self.query_one(HealthPanel).show(state.health, state.connected)
        self.query_one(LatencyPanel).show({s: state.percentiles(s) for s in LATENCY_STAGES})
        self.query_one(OutcomesPanel).show(state.outcomes_today())

    def _selected_call_id(self) -> str | None:
        call_id = self.query_one(CallsTable).selected_key
        if call_id is None:
            self.notify("No live call selected", severity="warning")
        return call_id

    def on_data_table_row_selected(self, event: CallsTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._open(event.row_key.value)

    def action_open_call(self) -> None:
        call_id = self._selected_call_id()
        if call_id is not None:
            self._open(call_id)

    def _open(self, call_id: str) -> None:
        from tui.screens.call_detail import CallDetailScreen

        self.app.push_screen(CallDetailScreen(self.state, call_id))

    def action_hangup(self) -> None:
        call_id = self._selected_call_id()
        if call_id is not None:
            hang_up(self, call_id)

    def action_transfer(self) -> None:
        call_id = self._selected_call_id()
        if call_id is not None:
            transfer(self, call_id)


def _who(screen: StateScreen, call_id: str) -> str:
    call = screen.state.call(call_id)
    return call.lead if call is not None and call.lead else call_id


def hang_up(screen: StateScreen, call_id: str) -> None:
    who = _who(screen, call_id)
    screen.confirm_then(f"Hang up the call with {who}?", "call.hangup", {"call_id": call_id},
                        f"Hung up the call with {who}")


def transfer(screen: StateScreen, call_id: str) -> None:
    who = _who(screen, call_id)
    screen.confirm_then(f"Transfer the call with {who} to a human?", "call.transfer",
                        {"call_id": call_id}, f"Transferring the call with {who}")
