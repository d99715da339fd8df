from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from reautod.call_events import CallState, CallStateEvent, CallStateSource
from reautod.dialogue.results import AgentScoreEvent
from reautod.topics import AgentTransition, HealthChanged, LogRecord
from tests.tui.conftest import wait_until
from tests.tui.fake_daemon import CAMPAIGNS, FIXED_NOW, FakeDaemon, live_call, recorded_events
from tui.app import ReautoApp
from tui.link import Backoff
from tui.screens.call_detail import CallDetailScreen
from tui.screens.campaigns import CampaignsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.log import LogScreen
from tui.widgets.log_view import LogView
from tui.widgets.panels import OutcomesPanel
from tui.widgets.tables import CallsTable, CampaignsTable
from tui.widgets.transcript import TranscriptView

FAST = Backoff(initial_s=0.05, max_s=0.2)


def make_app(socket_path: Path) -> ReautoApp:
    return ReautoApp(socket_path, clock=lambda: FIXED_NOW, refresh_s=0.1, backoff=FAST)


def cells(table: CallsTable | CampaignsTable, key: str) -> list[str]:
    return [c.plain if isinstance(c, Text) else str(c) for c in table.get_row(key)]


def rendered(widget: Any) -> str:
    """The text a Static/Label shows, whatever Rich renderable it holds."""
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


LIVE_CALL = live_call("CA1", "Sam Ortiz", "solar-q4", CallState.SPEAKING,
                      "2026-11-21T09:57:00+00:00", last_utterance="Hello Sam",
                      last_voice_to_voice_s=0.58)


async def test_a_live_call_appears_and_ends(daemon: FakeDaemon, socket_path: Path) -> None:
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.state.connected and daemon.bus.subscriber_count == 1,
                         "connected and subscribed")
        table = app.screen.query_one(CallsTable)
        assert table.row_count == 0
        assert "connected" in app.sub_title

        (name, data), *rest = recorded_events()
        daemon.publish(name, data)
        await wait_until(pilot, lambda: table.row_count == 1, "call row")
        assert cells(table, "CA7f3e")[:5] == ["Dana Whitfield", "solar-q4", "connecting", "-",
                                              "01:30"]

        for name, data in rest[:-1]:
            daemon.publish(name, data)
        await wait_until(pilot, lambda: "$0.04" in cells(table, "CA7f3e"), "cost update")
        daemon.publish("agent.transition", AgentTransition(
            call_id="CA7f3e", from_stage="greeter", to="qualifier", reason="intent=affirm"))
        daemon.publish("agent.score", AgentScoreEvent(call_id="CA7f3e", score=65, qualified=True))
        await wait_until(pilot, lambda: cells(table, "CA7f3e")[3] == "qualifier 65 ✓", "score")
        row = cells(table, "CA7f3e")
        assert row[2] == "listening"
        assert row[5].startswith("Great! Would a free")
        assert row[7] == "720 ms"

        name, data = rest[-1]
        daemon.publish(name, data)
        await wait_until(pilot, lambda: table.row_count == 0, "row removed on call.ended")
        outcomes = app.screen.query_one(OutcomesPanel)
        assert app.state.outcomes_today() == {"not_interested": 1}
        assert "not interested" in rendered(outcomes)


async def test_calls_already_live_come_from_calls_list(daemon: FakeDaemon,
                                                        socket_path: Path) -> None:
    daemon.calls = [LIVE_CALL]
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: table.row_count == 1, "call from snapshot")
        assert cells(table, "CA1") == ["Sam Ortiz", "solar-q4", "speaking", "-", "03:00",
                                       "Hello Sam", "-", "580 ms"]  # cost: cost.update
        daemon.calls = []  # ended while we missed the event: the next poll removes it
        await wait_until(pilot, lambda: table.row_count == 0, "row gone after resync")


async def test_the_transcript_updates_live(daemon: FakeDaemon, socket_path: Path) -> None:
    app = make_app(socket_path)
    events = recorded_events()
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_until(pilot, lambda: daemon.bus.subscriber_count == 1, "subscribed")
        daemon.publish(*events[0])
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: table.row_count == 1, "call row")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CallDetailScreen), "detail screen")
        transcript = app.screen.query_one(TranscriptView)
        assert transcript.written == 0

        for event in events[1:5]:
            daemon.publish(*event)
        await wait_until(pilot, lambda: transcript.written == 3, "three turns")
        daemon.publish(*events[5])  # barge-in
        daemon.publish(*events[6])
        await wait_until(pilot, lambda: transcript.written == 5, "barge-in and a turn")
        lines = [strip.text for strip in transcript.lines]
        text = "\n".join(lines)
        assert "Sure, what is this about?" in text
        assert "v2v 610 ms" in text
        assert "conf 0.93" in text
        barge = [i for i, line in enumerate(lines) if "barge-in" in line]
        later = [i for i, line in enumerate(lines) if "We already have panels." in line]
        assert barge and later and barge[0] < later[0]

        daemon.publish(*events[-2])  # agent.outcome: the agent's verdict
        daemon.publish(*events[-1])  # call.ended: counted under that verdict
        summary = app.screen.query_one("#call-summary")
        await wait_until(pilot, lambda: "ended: not_interested" in rendered(summary), "ended")
        await pilot.press("h")  # an ended call cannot be hung up
        assert not isinstance(app.screen, ConfirmScreen)


async def test_hang_up_asks_then_sends_the_request(daemon: FakeDaemon, socket_path: Path) -> None:
    daemon.calls = [LIVE_CALL, LIVE_CALL.model_copy(update={"call_id": "CA2",
                                                            "lead_name": "Kim Lee"})]
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: table.row_count == 2, "two calls")
        await pilot.press("down", "h")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        assert "Kim Lee" in rendered(app.screen.query_one("#confirm-question"))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), "dismissed")
        assert daemon.requests == []

        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: bool(daemon.requests), "request sent")
        assert daemon.requests == [("call.hangup", {"call_id": "CA2"})]

        await pilot.press("t", "y")
        await wait_until(pilot, lambda: len(daemon.requests) == 2, "transfer sent")
        assert daemon.requests[1] == ("call.transfer", {"call_id": "CA2"})


async def test_a_refused_action_is_reported(daemon: FakeDaemon, socket_path: Path) -> None:
    daemon.calls = [LIVE_CALL]
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: table.row_count == 1, "call row")
        daemon.calls = []  # the call ends between the snapshot and the click
        await pilot.press("h", "y")
        await wait_until(pilot, lambda: any("failed" in n.message for n in app._notifications),
                         "error notification")
        assert daemon.requests == [("call.hangup", {"call_id": "CA1"})]
        assert any("not_found" in n.message for n in app._notifications)


async def test_pause_and_resume_a_campaign(daemon: FakeDaemon, socket_path: Path) -> None:
    daemon.campaigns = list(CAMPAIGNS)
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: len(app.state.campaigns) == 2, "campaigns loaded")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CampaignsScreen), "campaigns")
        table = app.screen.query_one(CampaignsTable)
        assert cells(table, "solar-q4") == ["solar-q4", "active", "50/200 (25%)", "2",
                                            "60/min, max 3", "$1.25"]
        await pilot.press("p", "y")
        await wait_until(pilot, lambda: bool(daemon.requests), "pause sent")
        await pilot.press("down", "r", "y")
        await wait_until(pilot, lambda: len(daemon.requests) == 2, "resume sent")
        assert daemon.requests == [("campaign.pause", {"campaign": "solar-q4"}),
                                   ("campaign.resume", {"campaign": "roofing"})]
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_drain_with_confirmation(daemon: FakeDaemon, socket_path: Path) -> None:
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.state.connected, "connected")
        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: bool(daemon.requests), "drain sent")
        assert daemon.requests == [("daemon.drain", {})]


async def test_reconnects_after_the_daemon_restarts(daemon: FakeDaemon,
                                                    socket_path: Path) -> None:
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.state.connected, "connected")
        assert app.link.sessions == 1

        await daemon.stop()
        await wait_until(pilot, lambda: not app.state.connected, "disconnected")
        assert "DISCONNECTED" in app.sub_title
        assert app.has_class("-disconnected")
        assert "unknown (disconnected)" in rendered(app.screen.query_one("#health"))

        daemon.calls = [LIVE_CALL]
        await daemon.start()
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: app.state.connected and table.row_count == 1,
                         "reconnected with the new daemon's calls")
        assert app.link.sessions == 2
        assert not app.has_class("-disconnected")
        await wait_until(pilot, lambda: daemon.bus.subscriber_count == 1, "subscribed again")
        daemon.publish("call.state", CallStateEvent(
            call_id="CA1", state="transferred", source=CallStateSource.REAUTOD))
        await wait_until(pilot, lambda: cells(table, "CA1")[2] == "transferred", "live events")


async def test_starts_disconnected_when_no_daemon_runs(socket_path: Path) -> None:
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: "DISCONNECTED" in app.sub_title, "disconnected")
        assert "not running" in app.state.disconnect_reason
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_log_pane_shows_warnings_and_navigation(daemon: FakeDaemon,
                                                      socket_path: Path) -> None:
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: daemon.bus.subscriber_count == 1, "subscribed")
        daemon.publish("log", LogRecord(level="WARNING", logger="reautod.engines.llm",
                                        message="llm queue full, request refused"))
        await wait_until(pilot, lambda: len(app.state.log) == 1, "log line")
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), "log screen")
        log_view = app.screen.query_one(LogView)
        await wait_until(pilot, lambda: len(log_view.lines) == 1, "line drawn")
        assert "llm queue full, request refused" in log_view.lines[0].text
        daemon.publish("health.changed", HealthChanged(name="redis", ok=False, detail="refused"))
        await wait_until(pilot, lambda: len(log_view.lines) == 2, "health line drawn")
        assert "redis: FAIL refused" in log_view.lines[1].text
        await pilot.press("c")
        assert isinstance(app.screen, CampaignsScreen)
        await pilot.press("d")
        assert isinstance(app.screen, DashboardScreen)
        assert len(app.screen_stack) == 2  # navigation does not pile screens up


async def test_a_failing_method_is_logged_without_dropping_the_connection(
    daemon: FakeDaemon, socket_path: Path
) -> None:
    daemon.health_error = RuntimeError("dictionary changed size during iteration")
    app = make_app(socket_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.state.connected and len(app.state.log) == 1,
                         "connected, error logged")
        assert "health failed: internal: RuntimeError" in app.state.log[0].message
        daemon.calls = [LIVE_CALL]  # the other snapshot methods still work
        table = app.screen.query_one(CallsTable)
        await wait_until(pilot, lambda: table.row_count == 1, "calls still refresh")
        assert app.link.sessions == 1 and len(app.state.log) == 1  # logged once, not per poll
        daemon.health_error = None
        await wait_until(pilot, lambda: bool(app.state.health), "health back")
        assert app.state.log[-1].message == "health answers again"
        assert app.link.sessions == 1
