"""A call's live transcript: appended to as turns arrive, barge-ins marked, latencies per turn."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import RichLog

from reautod.security.text import terminal_safe
from tui.model import Turn, format_seconds

LATENCY_ORDER = ("transcript", "first_token", "first_audio", "voice_to_voice")
SHORT = {"transcript": "stt", "first_token": "llm", "first_audio": "tts",
         "voice_to_voice": "v2v", "clear": "clear"}


def render_turn(turn: Turn) -> Text:
    if turn.is_barge_in:
        line = Text("⚡ barge-in", style="bold magenta")
        if turn.text:
            line.append(f"  heard: {terminal_safe(turn.text)}", style="magenta")
        if "clear" in turn.latencies:
            line.append(f"  (clear {format_seconds(turn.latencies['clear'])})", style="dim")
        return line
    caller = turn.speaker == "caller"
    line = Text(f"{'caller' if caller else terminal_safe(turn.speaker):>6} ",
                style="bold cyan" if caller else "bold green")
    line.append(terminal_safe(turn.text) or "…")
    details = []
    if turn.confidence is not None:
        details.append(f"conf {turn.confidence:.2f}")
    for stage in LATENCY_ORDER:
        if stage in turn.latencies:
            details.append(f"{SHORT[stage]} {format_seconds(turn.latencies[stage])}")
    if turn.interrupted:
        details.append("interrupted")
    if turn.error:
        details.append(f"error {terminal_safe(turn.error)}")
    if details:
        slow = turn.latencies.get("voice_to_voice", 0) > 1.0
        style = "red" if slow or turn.error else "dim"
        line.append(f"  [{' · '.join(details)}]", style=style)
    return line


class TranscriptView(RichLog):
    """Writes only the turns it has not written yet, so updates are cheap and scroll stays put."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, auto_scroll=True, id=id)
        self.written = 0

    def show(self, turns: Sequence[Turn]) -> None:
        if len(turns) < self.written:  # the transcript was trimmed: start over
            self.clear()
            self.written = 0
        for turn in turns[self.written:]:
            self.write(render_turn(turn), expand=True)
        self.written = len(turns)
