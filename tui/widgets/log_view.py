"""The daemon's WARNING+ log lines, health changes and daemon state changes, newest last."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import RichLog

from reautod.security.text import terminal_safe
from tui.model import LogLine

LEVEL_STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red",
                "CRITICAL": "bold white on red"}


def render_line(line: LogLine) -> Text:
    stamp = line.ts.strftime("%H:%M:%S") if line.ts else "--:--:--"
    text = Text(f"{stamp} ", style="dim")
    text.append(f"{line.level:<8}", style=LEVEL_STYLES.get(line.level, ""))
    text.append(f" {terminal_safe(line.source)}: ", style="dim")
    text.append(terminal_safe(line.message))
    return text


class LogView(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, auto_scroll=True, id=id)
        self._seen: LogLine | None = None

    def show(self, lines: Sequence[LogLine]) -> None:
        """Write lines newer than the last one written (the deque drops old ones from the left)."""
        start = 0
        if self._seen is not None:
            for index in range(len(lines) - 1, -1, -1):
                if lines[index] is self._seen:
                    start = index + 1
                    break
        for line in list(lines)[start:]:
            self.write(render_line(line), expand=True)
        if lines:
            self._seen = lines[-1]
