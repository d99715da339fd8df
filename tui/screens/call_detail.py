"""One call: who, where it stands, and its transcript as it happens."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, Label, Static

from reautod.security.text import terminal_safe
from tui.model import LiveState, format_duration, format_money, format_seconds
from tui.screens.base import StateScreen
from tui.screens.dashboard import hang_up, transfer
from tui.widgets.transcript import TranscriptView


class CallDetailScreen(StateScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("h", "hangup", "Hang up"),
        Binding("t", "transfer", "Transfer"),
    ]

    def __init__(self, state: LiveState, call_id: str) -> None:
        super().__init__(state)
        self.call_id = call_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="call-summary")
        with Vertical(classes="box", id="transcript-box"):
            yield Label("Transcript", classes="box-title")
            yield TranscriptView(id="transcript")
        yield Footer()

    def on_mount(self) -> None:
        # after the first layout, so the transcript wraps at its real width, not RichLog's minimum
        self.call_after_refresh(self.refresh_view)

    def refresh_view(self) -> None:
        call = self.state.call(self.call_id)
        summary = self.query_one("#call-summary", Static)
        if call is None:
            summary.update(Text(f"call {self.call_id}: not known (yet)", style="dim"))
            return
        line = Text()
        line.append(terminal_safe(call.lead or "unknown lead"), style="bold")
        line.append(f"  {terminal_safe(call.campaign or '-')}", style="dim")
        status = call.state if call.live else f"ended: {terminal_safe(call.outcome or 'unknown')}"
        line.append(f"  {status}", style="yellow" if call.live else "bold")
        line.append(f"  {format_duration(self.state.duration_s(call))}")
        line.append(f"  cost {format_money(call.cost_micros)}")
        line.append(f"  last v2v {format_seconds(call.voice_to_voice_s)}")
        if call.agent:
            line.append(f"  stage {terminal_safe(call.agent)}", style="dim")
        if call.score is not None:
            line.append(f"  score {call.score}", style="bold green" if call.qualified else "bold")
            if call.qualified:
                line.append(" qualified", style="green")
        summary.update(line)
        self.query_one(TranscriptView).show(call.turns)

    def _live(self) -> bool:
        call = self.state.call(self.call_id)
        if call is None or not call.live:
            self.notify("This call has ended", severity="warning")
            return False
        return True

    def action_hangup(self) -> None:
        if self._live():
            hang_up(self, self.call_id)

    def action_transfer(self) -> None:
        if self._live():
            transfer(self, self.call_id)
