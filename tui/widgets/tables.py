"""The live-calls and campaigns tables, updated in place so the cursor stays on its row.

Names and words come from leads, imports and callers: each such cell is a `Text` of the
terminal-safe string (a plain str cell would be read as Rich markup, and control characters
would reach the terminal)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from reautod.campaigns.results import CampaignSummary
from reautod.security.text import terminal_safe
from reautod.store.enums import CampaignStatus
from tui.model import (
    Call,
    format_duration,
    format_money,
    format_seconds,
)

CALL_COLUMNS = ("lead", "campaign", "state", "stage/score", "duration", "last utterance", "cost",
                "v2v")
CAMPAIGN_COLUMNS = ("campaign", "state", "progress", "live", "pacing", "spent")


class KeyedTable(DataTable[Any]):
    """A DataTable whose rows are keyed by id and synced from a list of row tuples."""

    COLUMNS: tuple[str, ...] = ()

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for column in self.COLUMNS:
            self.add_column(column, key=column)

    def sync(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Show `rows`: drop rows no longer there, add new ones, and rewrite the cells that
        changed, widening their column when the new text is longer (a call's stage and score
        arrive after its row)."""
        wanted = {key for key, _ in rows}
        for row_key in list(self.rows):
            if row_key.value not in wanted:
                self.remove_row(row_key)
        existing = {row_key.value for row_key in self.rows}
        for key, cells in rows:
            if key in existing:
                for column, cell in zip(self.COLUMNS, cells, strict=True):
                    if self.get_cell(key, column) != cell:
                        self.update_cell(key, column, cell, update_width=True)
            else:
                self.add_row(*cells, key=key)

    @property
    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def safe(text: str) -> Text:
    """Outside text as a table cell: escaped, never markup."""
    return Text(terminal_safe(text))


class CallsTable(KeyedTable):
    COLUMNS = CALL_COLUMNS

    def show(self, calls: Sequence[Call], duration: Callable[[Call], float | None]) -> None:
        self.sync([
            (call.call_id, (
                safe(call.lead or "-"),
                safe(call.campaign or "-"),
                Text(call.state, style="yellow" if call.state in ("connecting", "starting", "ending") else ""),
                Text(terminal_safe(call.stage_and_score() or "-"),
                     style="green" if call.qualified else ""),
                format_duration(duration(call)),
                safe(_clip(call.last_utterance, 32)),
                format_money(call.cost_micros),
                Text(format_seconds(call.voice_to_voice_s),
                     style="red" if (call.voice_to_voice_s or 0) > 1.0 else ""),
            ))
            for call in calls
        ])


class CampaignsTable(KeyedTable):
    COLUMNS = CAMPAIGN_COLUMNS

    def show(self, campaigns: Sequence[CampaignSummary]) -> None:
        rows = []
        for c in campaigns:
            if c.leads_total:
                done = c.leads_done
                progress = f"{done}/{c.leads_total} ({100 * done // c.leads_total}%)"
            else:
                progress = "-"
            pacing = "-"
            if c.pacing is not None:
                pacing = f"{c.pacing.calls_per_minute:g}/min, max {c.pacing.max_concurrent}"
            state = Text(c.status.value, style="yellow" if c.paused
                         else "green" if c.status is CampaignStatus.ACTIVE else "")
            rows.append((c.name, (safe(c.name), state, progress, str(c.calls_live), pacing,
                                  format_money(c.spent_micros))))
        self.sync(rows)
