"""The call state machine: forward only, tolerant of whatever order Twilio delivers in."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from reautod.store.enums import CallStatus
from reautod.telephony.state_machine import (
    TERMINAL,
    Applied,
    CallTimeline,
    StatusEvent,
    can_transition,
    parse_status,
    transition,
    twilio_spelling,
)

HAPPY = ["initiated", "ringing", "in-progress", "completed"]


def test_happy_path_in_order() -> None:
    timeline = CallTimeline()
    outcomes = [timeline.apply(StatusEvent(s, i)) for i, s in enumerate(HAPPY)]
    assert outcomes == [Applied.APPLIED] * 4
    assert timeline.status is CallStatus.COMPLETED
    assert [e.status for e in timeline.entries] == [parse_status(s) for s in HAPPY]


def test_out_of_order_never_goes_backwards_and_timeline_is_sorted() -> None:
    timeline = CallTimeline()
    assert timeline.apply(StatusEvent("ringing", 1)) is Applied.APPLIED
    assert timeline.apply(StatusEvent("completed", 3)) is Applied.APPLIED
    assert timeline.apply(StatusEvent("initiated", 0)) is Applied.LATE
    assert timeline.apply(StatusEvent("in-progress", 2)) is Applied.LATE
    assert timeline.status is CallStatus.COMPLETED
    assert [e.sequence_number for e in timeline.entries] == [0, 1, 2, 3]


def test_duplicates_are_ignored() -> None:
    timeline = CallTimeline()
    timeline.apply(StatusEvent("ringing", 1))
    assert timeline.apply(StatusEvent("ringing", 1)) is Applied.DUPLICATE
    assert timeline.apply(StatusEvent("ringing", 7)) is Applied.DUPLICATE
    assert len(timeline.entries) == 1


def test_missed_answered_callback_still_completes() -> None:
    timeline = CallTimeline()
    timeline.apply(StatusEvent("ringing", 1))
    assert timeline.apply(StatusEvent("completed", 3)) is Applied.APPLIED
    assert timeline.status is CallStatus.COMPLETED


def test_impossible_transitions_are_ignored_not_raised() -> None:
    timeline = CallTimeline()
    timeline.apply(StatusEvent("in-progress", 2))
    assert timeline.apply(StatusEvent("busy", 3)) is Applied.IMPOSSIBLE
    assert timeline.apply(StatusEvent("no-answer", 4)) is Applied.IMPOSSIBLE
    assert timeline.status is CallStatus.IN_PROGRESS
    timeline.apply(StatusEvent("completed", 5))
    assert timeline.apply(StatusEvent("failed", 6)) is Applied.IMPOSSIBLE
    assert timeline.status is CallStatus.COMPLETED


def test_unknown_and_missing_statuses() -> None:
    timeline = CallTimeline()
    assert timeline.apply(StatusEvent("exploded", 1)) is Applied.UNKNOWN_STATUS
    assert timeline.apply(StatusEvent("", 2)) is Applied.UNKNOWN_STATUS
    assert timeline.status is CallStatus.QUEUED
    assert parse_status(" In-Progress ") is CallStatus.IN_PROGRESS
    assert parse_status(None) is None


def test_transition_table() -> None:
    for terminal in TERMINAL:
        for new in CallStatus:
            assert transition(terminal, new) is terminal
    assert can_transition(CallStatus.QUEUED, CallStatus.BUSY)
    assert can_transition(CallStatus.RINGING, CallStatus.NO_ANSWER)
    assert not can_transition(CallStatus.RINGING, CallStatus.INITIATED)
    assert can_transition(CallStatus.IN_PROGRESS, CallStatus.FAILED)


_ORDER = {CallStatus.QUEUED: 0, CallStatus.INITIATED: 1, CallStatus.RINGING: 2,
          CallStatus.IN_PROGRESS: 3}


def _rank(status: CallStatus) -> int:
    return 4 if status.terminal else _ORDER[status]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([*(twilio_spelling(s) for s in CallStatus), "bogus", "", "IN-PROGRESS"]),
            st.one_of(st.none(), st.integers(min_value=-5, max_value=30)),
        ),
        max_size=30,
    )
)
def test_fuzzed_callbacks_never_crash_or_go_backwards(events: list[tuple[str, int | None]]) -> None:
    timeline = CallTimeline()
    previous = timeline.status
    for status, seq in events:
        timeline.apply(StatusEvent(status, seq))
        assert _rank(timeline.status) >= _rank(previous)
        if previous.terminal:
            assert timeline.status is previous
        previous = timeline.status
    seqs = [e.sequence_number for e in timeline.entries if e.sequence_number is not None]
    assert seqs == sorted(seqs)
    assert len(seqs) == len(set(seqs))


def test_any_delivery_order_of_the_happy_path_ends_completed() -> None:
    for order in itertools.permutations(range(4)):
        timeline = CallTimeline()
        for i in order:
            timeline.apply(StatusEvent(HAPPY[i], i))
        assert timeline.status is CallStatus.COMPLETED
        assert [twilio_spelling(e.status) for e in timeline.entries] == HAPPY
