"""What the TUI shows from leads, imports and callers is escaped and never read as markup: a
name holding ESC, a bidi override or Rich markup is shown as visible text."""

from __future__ import annotations

from pathlib import Path

from tests.tui.conftest import wait_until
from tests.tui.fake_daemon import FakeDaemon
from tests.tui.test_app import LIVE_CALL, cells, make_app
from tui.model import LogLine, Turn
from tui.widgets.log_view import render_line
from tui.widgets.tables import CallsTable
from tui.widgets.transcript import render_turn

HOSTILE = "Sam\x1b]0;owned\x07 [bold]x[/bold] \u202eevil"
SHOWN = "Sam\\x1b]0;owned\\x07 [bold]x[/bold] \\u202eevil"


async def test_hostile_names_in_the_calls_table_are_shown_escaped(
    daemon: FakeDaemon, socket_path: Path
) -> None:
    daemon.calls = [LIVE_CALL.model_copy(update={"lead_name": HOSTILE, "campaign": "q4\x9b2J",
                                                 "last_utterance": "hi\x1b[2J"})]
    app = make_app(socket_path)
    async with app.run_test(size=(200, 36)) as pilot:
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: table.row_count == 1, "call from snapshot")
        row = cells(table, "CA1")
        assert row[:2] == [SHOWN, "q4\\x9b2J"]
        assert row[5] == "hi\\x1b[2J"


def test_transcript_and_log_lines_are_escaped() -> None:
    turn = render_turn(Turn(speaker="caller", text=HOSTILE, error="e\x1b"))
    assert SHOWN in turn.plain and "\x1b" not in turn.plain and "e\\x1b" in turn.plain
    barge = render_turn(Turn(speaker="barge_in", text="\u2066x"))
    assert "\\u2066x" in barge.plain
    line = render_line(LogLine(None, "WARNING", "src\x1b", HOSTILE))
    assert "src\\x1b" in line.plain and SHOWN in line.plain
