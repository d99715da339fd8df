"""The spool's wire form round-trips every record; torn or foreign lines are skipped, not fatal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reautod.errors import ValidationError
from reautod.store.enums import (
    AmdResult,
    CallOutcome,
    CallStatus,
    CostService,
    CostUnit,
    RecordingDirection,
    RecordingFormat,
)
from reautod.store.records import (
    AgentTransitionRecord,
    CallEnded,
    CallStatusChanged,
    CostRecorded,
    Record,
    RecordingFinalized,
    ScoreUpdate,
    from_wire,
    to_wire,
)
from reautod.store.spool import Spool
from tests.store.factories import T0, call_started, turn

aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
text = st.text(max_size=200)


def all_kinds(at: datetime, words: str, n: int) -> list[Record]:
    call = uuid.uuid4()
    return [
        call_started(call_id=call, call_sid=words[:34] or None, at=at),
        CallStatusChanged(call, CallStatus.RINGING, at, "twilio", n, {"raw": words}),
        turn(call, n, at=at),
        AgentTransitionRecord(uuid.uuid4(), call, n, "closer", at, reason=words),
        ScoreUpdate(uuid.uuid4(), n % 101, at, call_id=call, factors={"budget": n}),
        CallEnded(
            call,
            at,
            CallStatus.BUSY,
            outcome=CallOutcome.NO_ANSWER,
            amd_result=AmdResult.UNKNOWN,
            disposition=words,
            duration_ms=n,
        ),
        RecordingFinalized(
            uuid.uuid4(),
            call,
            RecordingDirection.OUTBOUND,
            f"/r/{n}.wav",
            RecordingFormat.WAV,
            8000,
            1,
            n,
            n,
            "a" * 64,
            at,
            retention_until=at + timedelta(days=30),
        ),
        CostRecorded(
            uuid.uuid4(),
            CostService.STT,
            "whisper",
            CostUnit.SECONDS,
            Decimal(n) / 7,
            Decimal("0.333333"),
            n,
            at,
            call_id=call,
        ),
    ]


@settings(max_examples=50, deadline=None)
@given(at=aware, words=text, n=st.integers(min_value=0, max_value=2**31 - 1))
def test_every_record_round_trips(at: datetime, words: str, n: int) -> None:
    for record in all_kinds(at, words, n):
        assert from_wire(to_wire(record)) == record


def test_spool_appends_reads_in_order_and_skips_damage(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = all_kinds(T0, "x", 1)
    second = all_kinds(T0, "y", 2)
    spool.append(first)
    with spool.path.open("a") as f:
        f.write('{"kind": "martian", "data": {}}\n')  # not ours: skipped, logged
    spool.append(second)
    with spool.path.open("a") as f:
        f.write('{"kind": "turn", "da')  # a write torn by a crash
    records, offset = spool.read(0, 5)
    assert records == first[:5]
    rest, end = spool.read(offset, 100)
    assert rest == first[5:] + second
    assert spool.read(end, 100) == ([], end)
    third = all_kinds(T0, "z", 3)
    spool.append(third)  # after a torn tail: starts on a line of its own
    assert spool.read(end, 100)[0] == third
    spool.clear()
    assert spool.size() == 0 and spool.read(0, 10) == ([], 0)


def test_from_wire_refuses_garbage() -> None:
    with pytest.raises(ValidationError):
        from_wire({"kind": "turn", "data": {"turn_id": "not-a-uuid"}})
    with pytest.raises(ValidationError):
        from_wire({"nothing": 1})
