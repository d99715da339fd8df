"""The observer fan-out: every callback reaches every observer, in order, and one observer that
raises is logged without hiding the call from the others."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from reautod.call_events import CallInfo, CallState, ObserverFanOut, TurnRecord
from tests.pipeline.conftest import RecordingObserver

NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
INFO = CallInfo("c1", "MZ1", "CA1", "Jane Doe", "solar", "outbound", CallState.LISTENING, NOW)
TURN = TurnRecord("c1", 1, "caller", "hello", 0.9, NOW, NOW)


class BrokenObserver:
    """Implements CallObserver and raises on every callback (an observer with a bug)."""

    def on_call_started(self, info: CallInfo) -> None:
        raise RuntimeError("broken")

    def on_turn(self, turn: TurnRecord) -> None:
        raise RuntimeError("broken")

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        raise RuntimeError("broken")

    def on_call_state(self, call_id: str, state: CallState) -> None:
        raise RuntimeError("broken")

    def on_dtmf(self, call_id: str, digit: str) -> None:
        raise RuntimeError("broken")

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        raise RuntimeError("broken")


def tell_a_whole_call(fan_out: ObserverFanOut) -> None:
    fan_out.on_call_started(INFO)
    fan_out.on_call_state("c1", CallState.SPEAKING)
    fan_out.on_turn(TURN)
    fan_out.on_barge_in("c1", "Hi Jane")
    fan_out.on_dtmf("c1", "9")
    fan_out.on_call_ended("c1", "hangup", 12.5)


def assert_heard_the_whole_call(observer: RecordingObserver) -> None:
    assert observer.started == [INFO]
    assert observer.states == [("c1", CallState.SPEAKING)]
    assert observer.turns == [TURN]
    assert observer.barge_ins == [("c1", "Hi Jane")]
    assert observer.dtmf == [("c1", "9")]
    assert observer.ended == [("c1", "hangup", 12.5)]


def test_every_callback_reaches_every_observer() -> None:
    first, second = RecordingObserver(), RecordingObserver()
    tell_a_whole_call(ObserverFanOut(first, second))
    assert_heard_the_whole_call(first)
    assert_heard_the_whole_call(second)


def test_a_failing_observer_is_logged_and_the_others_still_hear_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before, after = RecordingObserver(), RecordingObserver()
    with caplog.at_level(logging.ERROR, logger="reautod.call_events"):
        tell_a_whole_call(ObserverFanOut(before, BrokenObserver(), after))
    assert_heard_the_whole_call(before)
    assert_heard_the_whole_call(after)
    assert [r.getMessage() for r in caplog.records] == [
        f"call observer BrokenObserver.{method} failed"
        for method in ("on_call_started", "on_call_state", "on_turn", "on_barge_in", "on_dtmf",
                       "on_call_ended")
    ]
    # the transcript and the caller's name stay out of the log
    assert not any("hello" in r.getMessage() or "Jane" in r.getMessage() for r in caplog.records)
