from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reautod.call_events import CallState, CallStateEvent, CallStateSource
from reautod.observability.events import EVENT_TYPES
from reautod.topics import TurnEvent
from tests.tui.fake_daemon import live_call, recorded_events
from tui.link import Backoff
from tui.model import (
    PAYLOADS,
    LiveState,
    format_duration,
    format_money,
    format_seconds,
    percentile,
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def event(event_name: str, **data: Any) -> dict[str, Any]:
    return {"event": event_name, "ts": "2026-11-21T10:00:00+00:00", "data": data}


def turn(call_id: str, text: str, **more: Any) -> dict[str, Any]:
    """A turn event as the daemon publishes it (the TurnEvent model)."""
    record = TurnEvent(call_id=call_id, index=0, speaker=more.pop("speaker", "agent"), text=text,
                       confidence=None, started_at=datetime(2026, 11, 21, 9, 59, tzinfo=UTC),
                       ended_at=datetime(2026, 11, 21, 9, 59, 2, tzinfo=UTC), **more)
    return event("turn", **record.model_dump(mode="json"))


def started(call_id: str, lead_name: str = "Ann", campaign: str = "solar") -> dict[str, Any]:
    """A call.started event as the daemon publishes it (the LiveCall model)."""
    call = live_call(call_id, lead_name, campaign, CallState.CONNECTING, "2026-11-21T09:59:00+00:00")
    return event("call.started", **call.model_dump(mode="json"))


def state_at(now: datetime = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)) -> tuple[LiveState, Clock]:
    clock = Clock(now)
    return LiveState(clock), clock


def test_recorded_call_from_start_to_end() -> None:
    state, _ = state_at()
    for name, data in recorded_events():
        state.apply_event({"event": name, "ts": "2026-11-21T09:59:00+00:00",
                           "data": data.model_dump(mode="json", by_alias=True)})
    assert state.calls == {}
    call = state.call("CA7f3e")
    assert call is not None and not call.live
    assert call.lead == "Dana Whitfield"
    assert call.outcome == "not_interested"
    assert state.duration_s(call) == 40.0
    assert [t.speaker for t in call.turns] == ["agent", "caller", "agent", "barge_in", "caller",
                                               "agent"]
    assert call.turns[2].interrupted
    assert call.turns[3].text == "we already"
    assert call.cost_micros == 41000
    assert state.outcomes_today() == {"not_interested": 1}
    count, p50, p95, _ = state.percentiles("voice_to_voice")
    assert (count, p50, p95) == (2, 0.61, 0.72)
    assert state.percentiles("transcript")[0] == 4


def test_a_repeated_call_ended_counts_once() -> None:
    state, _ = state_at()
    state.apply_event(started("A"))
    state.apply_event(event("call.ended", call_id="A", reason="failed: stt timeout", duration_s=3))
    state.apply_event(event("call.ended", call_id="A", reason="failed: stt timeout", duration_s=3))
    assert state.outcomes_today() == {"failed": 1}


def test_outcomes_reset_at_midnight() -> None:
    state, clock = state_at(datetime(2026, 11, 21, 23, 59, tzinfo=UTC))
    state.apply_event(event("agent.outcome", call_id="A", outcome="voicemail", booked=False))
    state.apply_event(event("call.ended", call_id="A", reason="pipeline_finished", duration_s=9))
    assert state.outcomes_today() == {"voicemail": 1}
    clock.now += timedelta(minutes=2)
    assert state.outcomes_today() == {}
    state.apply_event(event("call.ended", call_id="B", reason="pipeline_finished", duration_s=9))
    state.apply_event(event("agent.outcome", call_id="B", outcome="qualified", booked=False))
    # the agent's verdict after the media ended: counted under the verdict, once
    assert state.outcomes_today() == {"qualified": 1}


def test_snapshot_keeps_a_call_started_since_the_last_snapshot() -> None:
    state, _ = state_at()
    state.apply_snapshot(None, None, {"calls": []}, None)
    state.apply_event(started("NEW"))
    # this calls.list may have been read before NEW started: keep NEW for now
    state.apply_snapshot(None, None, {"calls": []}, None)
    assert "NEW" in state.calls
    # the next one, with no event about NEW in between, is believed
    state.apply_snapshot(None, None, {"calls": []}, None)
    assert "NEW" not in state.calls
    gone = state.call("NEW")
    assert gone is not None and gone.ended_at is not None


def test_malformed_and_unknown_events_are_skipped() -> None:
    state, _ = state_at()
    assert state.apply_event({"event": "turn"}) is None
    assert state.apply_event({"event": "turn", "data": {"text": "no call id"}}) is None
    assert state.apply_event(event("something.new", x=1)) is None
    # a turn of another shape (not its TurnEvent) is skipped whole
    assert state.apply_event({**turn("A", "hi"), "data": {**turn("A", "hi")["data"],
                                                          "latencies": {"stt_s": "fast"}}}) is None
    assert state.events_malformed == 3
    assert state.call("A") is None and state.percentiles("transcript")[0] == 0
    assert state.apply_event(turn("A", "hi", latencies={"stt_s": 0.2})) == "A"
    assert state.percentiles("transcript")[0] == 1


def test_health_changes_and_lagged_go_to_the_log() -> None:
    state, _ = state_at()
    state.apply_snapshot(None, {"ok": True, "checks": {"redis": {"ok": True, "detail": "up"}}},
                         None, None)
    state.apply_event(event("health.changed", name="redis", ok=False, detail="refused"))
    state.apply_event(event("lagged", dropped=12))
    state.apply_event(event("log", level="ERROR", logger="reautod.engines", message="llm died"))
    assert state.health_ok is False
    assert [c.ok for c in state.health] == [False]
    assert [line.level for line in state.log] == ["WARNING", "WARNING", "ERROR"]
    assert state.events_lagged == 12


def test_percentiles_over_a_rolling_window() -> None:
    state, _ = state_at()
    for i in range(150):
        state.apply_event(turn("A", "x", latencies={"voice_to_voice_s": 2.0 if i < 50 else 0.5}))
    count, p50, p95, p99 = state.percentiles("voice_to_voice")
    assert count == 100 and p50 == p95 == p99 == 0.5  # the 50 slow ones fell out of the window
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0


def test_formatting() -> None:
    assert format_seconds(0.6204) == "620 ms"
    assert format_seconds(12.3) == "12.3 s"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(65) == "01:05"
    assert format_money(41000) == "$0.04"
    assert format_money(None) == "-"


def test_backoff_grows_to_its_cap() -> None:
    delays = Backoff(initial_s=0.5, max_s=4.0).delays()
    assert [next(delays) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_call_state_from_the_pipeline_and_the_phone_line() -> None:
    """Both layers publish one `call.state` model; an untyped payload is counted, not applied."""
    state = LiveState(lambda: datetime(2026, 11, 21, 10, 0, tzinfo=UTC))
    line = CallStateEvent(call_id="A", state="ringing", source=CallStateSource.TWILIO,
                          campaign="solar")
    state.apply_event(event("call.state", **line.model_dump(mode="json")))
    assert state.calls["A"].state == "ringing" and state.calls["A"].campaign == "solar"
    talk = CallStateEvent(call_id="A", state=CallState.SPEAKING.value,
                          source=CallStateSource.PIPELINE)
    state.apply_event(event("call.state", **talk.model_dump(mode="json")))
    assert state.calls["A"].state == "speaking" and state.calls["A"].campaign == "solar"
    state.apply_event(event("call.state", call_id="A", status="completed"))  # the old shape
    assert state.calls["A"].state == "speaking" and state.events_malformed == 1


def test_the_agents_stage_and_score_follow_its_events() -> None:
    state, _ = state_at()
    state.apply_event(event("call.started", call_id="A", lead_name="Dana"))  # not a LiveCall
    assert state.call("A") is None and state.events_malformed == 1
    state.apply_event(started("A", "Dana", "sellers"))
    call = state.call("A")
    assert call is not None and call.stage_and_score() == ""  # no playbook answers (yet)
    state.apply_event(event("agent.transition", call_id="A", **{"from": None}, to="greeter",
                            reason="start"))
    assert call.stage_and_score() == "greeter"
    state.apply_event(event("agent.transition", call_id="A", **{"from": "greeter"},
                            to="qualifier", reason="affirm"))
    state.apply_event(event("agent.score", call_id="A", score=30, qualified=False))
    assert (call.agent, call.score, call.qualified) == ("qualifier", 30, False)
    assert call.stage_and_score() == "qualifier 30"
    state.apply_event(event("agent.score", call_id="A", score=100, qualified=True))
    assert call.stage_and_score() == "qualifier 100 ✓"
    # A score the daemon cannot have sent is dropped, and counted.
    assert state.apply_event(event("agent.score", call_id="A", score=140, qualified=True)) is None
    assert state.events_malformed == 2 and call.score == 100  # with the untyped call.started


def test_a_poll_does_not_undo_the_lines_state() -> None:
    """calls.list carries the pipeline's state: a poll that still says "speaking" leaves the
    phone line's "transferred" shown; a real pipeline move is shown again."""
    state, _ = state_at()
    state.apply_event(started("A"))
    row = live_call("A", "Ann", "solar", CallState.SPEAKING, "2026-11-21T09:59:00+00:00")
    state.apply_snapshot(None, None, {"calls": [row.model_dump(mode="json")]}, None)
    assert state.calls["A"].state == "speaking"
    line = CallStateEvent(call_id="A", state="transferred", source=CallStateSource.REAUTOD)
    state.apply_event(event("call.state", **line.model_dump(mode="json")))
    for _ in range(2):
        state.apply_snapshot(None, None, {"calls": [row.model_dump(mode="json")]}, None)
        assert state.calls["A"].state == "transferred"
    ending = row.model_copy(update={"state": CallState.ENDING})
    state.apply_snapshot(None, None, {"calls": [ending.model_dump(mode="json")]}, None)
    assert state.calls["A"].state == "ending"


def test_every_topic_has_one_payload_model() -> None:
    """The TUI (and the fake daemon, which publishes only these) knows each topic's model."""
    assert set(PAYLOADS) == EVENT_TYPES
