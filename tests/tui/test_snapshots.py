"""SVG snapshots of the main screens (pytest-textual-snapshot); update with --snapshot-update.

Deterministic: a fixed clock, fixed recorded data, and each test waits until that data is drawn
and every table has measured its columns (`snap`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from reautod.call_events import CallState, LiveCall
from reautod.dialogue.results import AgentScoreEvent
from reautod.topics import AgentOutcome, AgentTransition, CallEnded
from tests.tui.conftest import wait_until
from tests.tui.fake_daemon import (
    CAMPAIGNS,
    FIXED_NOW,
    FakeDaemon,
    ThreadedDaemon,
    live_call,
    recorded_events,
)
from tui.app import ReautoApp
from tui.link import Backoff
from tui.screens.call_detail import CallDetailScreen
from tui.screens.campaigns import CampaignsScreen
from tui.widgets.tables import CallsTable
from tui.widgets.transcript import TranscriptView

SIZE = (120, 36)
CALLS: list[LiveCall] = [
    live_call("CA1", "Sam Ortiz", "solar-q4", CallState.SPEAKING, "2026-11-21T09:57:00+00:00",
              last_utterance="How much would it cost?", last_voice_to_voice_s=0.58),
    live_call("CA2", "Kim Lee", "roofing", CallState.CONNECTING, "2026-11-21T09:59:48+00:00"),
]


@pytest.fixture
def served(socket_path: Path) -> Iterator[ThreadedDaemon]:
    fake = FakeDaemon(socket_path)
    fake.calls = list(CALLS)
    fake.campaigns = list(CAMPAIGNS)
    fake.fail_check("redis", "connection refused (6379)")
    with ThreadedDaemon(fake) as served:
        yield served


def tables_measured(app: ReautoApp) -> bool:
    """Every table on every shown screen has measured its columns: a DataTable measures them when
    its queue next goes idle, which a loaded machine can leave until after the screenshot."""
    tables = [t for screen in app.screen_stack for t in screen.query(DataTable)]
    return all(not t._updated_cells and not t._require_update_dimensions for t in tables)


def snap(run_before: Callable[[Pilot[Any]], Any]) -> Callable[[Pilot[Any]], Any]:
    """`run_before`, then wait until the tables are measured."""
    async def measured(pilot: Pilot[Any]) -> None:
        await run_before(pilot)
        app = pilot.app
        assert isinstance(app, ReautoApp)
        await wait_until(pilot, lambda: tables_measured(app), "tables measured")

    return measured


def make_app(socket_path: Path) -> ReautoApp:
    return ReautoApp(socket_path, clock=lambda: FIXED_NOW, refresh_s=60.0,
                     backoff=Backoff(initial_s=0.05, max_s=0.05))


def with_recorded_call(served: ThreadedDaemon) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ReautoApp)
        await wait_until(pilot, lambda: app.state.connected and served.subscribers == 1,
                         "connected")
        for event in recorded_events()[:-1]:  # all but call.ended: the call is still live
            served.publish(*event)
        # two calls that finished earlier today: the outcomes panel counts call.ended events,
        # under the agent's verdict (agent.outcome) where one came
        served.publish("agent.outcome", AgentOutcome(call_id="CA0a", outcome="qualified",
                                                     booked=False))
        served.publish("call.ended", CallEnded(call_id="CA0a", reason="pipeline_finished",
                                               duration_s=95.0))
        served.publish("agent.outcome", AgentOutcome(call_id="CA0b", outcome="voicemail",
                                                     booked=False))
        served.publish("call.ended", CallEnded(call_id="CA0b", reason="pipeline_finished",
                                               duration_s=20.0))
        # the qualifying agent's stage and score, shown beside the call's state
        served.publish("agent.transition", AgentTransition(
            call_id="CA7f3e", from_stage="greeter", to="qualifier", reason="affirm"))
        served.publish("agent.score", AgentScoreEvent(call_id="CA7f3e", score=65,
                                                      qualified=True))
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: table.row_count == 3
                         and sum(app.state.outcomes_today().values()) == 2
                         and app.state.calls["CA7f3e"].cost_micros is not None
                         and app.state.calls["CA7f3e"].score == 65, "recorded call")

    return run_before


def test_dashboard(snap_compare: Any, served: ThreadedDaemon, socket_path: Path) -> None:
    assert snap_compare(make_app(socket_path), terminal_size=SIZE,
                        run_before=snap(with_recorded_call(served)))


def test_call_detail(snap_compare: Any, served: ThreadedDaemon, socket_path: Path) -> None:
    record = with_recorded_call(served)

    async def run_before(pilot: Pilot[Any]) -> None:
        await record(pilot)
        await pilot.press("down", "down", "enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CallDetailScreen), "detail")
        transcript = pilot.app.screen.query_one(TranscriptView)
        await wait_until(pilot, lambda: transcript.written == 6, "transcript")

    assert snap_compare(make_app(socket_path), terminal_size=SIZE, run_before=snap(run_before))


def test_campaigns(snap_compare: Any, served: ThreadedDaemon, socket_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ReautoApp)
        await wait_until(pilot, lambda: len(app.state.campaigns) == 2, "campaigns")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CampaignsScreen), "campaigns")

    assert snap_compare(make_app(socket_path), terminal_size=SIZE, run_before=snap(run_before))


def test_hang_up_confirmation(snap_compare: Any, served: ThreadedDaemon,
                              socket_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ReautoApp)
        await wait_until(pilot, lambda: len(app.state.calls) == 2, "calls")
        await pilot.press("h")

    assert snap_compare(make_app(socket_path), terminal_size=SIZE, run_before=snap(run_before))


def test_help(snap_compare: Any, served: ThreadedDaemon, socket_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ReautoApp)
        await wait_until(pilot, lambda: len(app.state.calls) == 2, "calls")
        await pilot.press("question_mark")

    assert snap_compare(make_app(socket_path), terminal_size=SIZE, run_before=snap(run_before))


def test_disconnected(snap_compare: Any, tmp_path: Path) -> None:
    socket_path = Path("/tmp/reautod-tui-test-nowhere/control.sock")

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ReautoApp)
        await wait_until(pilot, lambda: "DISCONNECTED" in app.sub_title, "disconnected")

    assert snap_compare(make_app(socket_path), terminal_size=SIZE, run_before=snap(run_before))
