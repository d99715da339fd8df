"""Small read-only panels of the dashboard: health, rolling latency percentiles, outcomes today."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from reautod.security.text import terminal_safe
from tui.model import LATENCY_STAGES, LATENCY_WINDOW, HealthCheck, format_seconds

STAGE_LABELS = {
    "transcript": "transcript",
    "first_token": "first token",
    "first_audio": "first audio",
    "voice_to_voice": "voice-to-voice",
}


class HealthPanel(Static):
    """Database, Redis, engines, GPU, HTTP: one line each, failures in red with their detail."""

    def show(self, checks: list[HealthCheck], connected: bool) -> None:
        if not connected:
            self.update(Text("unknown (disconnected)", style="dim"))
            return
        if not checks:
            self.update(Text("no health report yet", style="dim"))
            return
        width = max(len(terminal_safe(c.name)) for c in checks)
        lines = Text(no_wrap=True, overflow="ellipsis")
        for index, check in enumerate(checks):
            if index:
                lines.append("\n")
            lines.append("● " if check.ok else "✖ ", style="green" if check.ok else "bold red")
            lines.append(terminal_safe(check.name).ljust(width + 1),
                         style="" if check.ok else "bold")
            lines.append(terminal_safe(check.detail), style="dim" if check.ok else "red")
        self.update(lines)


class LatencyPanel(Static):
    """p50/p95/p99 per stage over the last LATENCY_WINDOW turns seen."""

    def show(self, rows: dict[str, tuple[int, float | None, float | None, float | None]]) -> None:
        table = Table(box=None, padding=(0, 1), show_edge=False,
                      title=f"last {LATENCY_WINDOW} turns", title_style="dim")
        table.add_column("stage", no_wrap=True)
        for head in ("p50", "p95", "p99"):
            table.add_column(head, justify="right", no_wrap=True)
        table.add_column("n", justify="right", style="dim")
        for stage in LATENCY_STAGES:
            count, p50, p95, p99 = rows[stage]
            table.add_row(STAGE_LABELS[stage], format_seconds(p50), format_seconds(p95),
                          format_seconds(p99), str(count))
        self.update(table)


class OutcomesPanel(Static):
    """Finished calls today, by outcome."""

    def show(self, outcomes: dict[str, int]) -> None:
        if not outcomes:
            self.update(Text("no calls finished today", style="dim"))
            return
        table = Table(box=None, padding=(0, 1), show_edge=False, show_header=False)
        table.add_column("outcome", no_wrap=True)
        table.add_column("calls", justify="right")
        for outcome, count in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(outcome.replace("_", " "), str(count))
        table.add_row(Text("total", style="bold"), Text(str(sum(outcomes.values())), style="bold"))
        self.update(table)
