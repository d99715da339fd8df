"""Recording consent: objections recognised, all-party by default, the file kept with its consent
or discarded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reautod.security.consent import (
    ConsentDecision,
    RecordingConsent,
    RecordingConsentSettings,
    detect_objection,
)
from reautod.security.keys import KeyRing, generate_key_text
from reautod.store.call_audio import RecorderSink
from reautod.store.recordings import CallRecorder
from reautod.store.records import RecordingFinalized

T = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
ALL_PARTY = RecordingConsentSettings()
ONE_PARTY = RecordingConsentSettings(mode="one_party")


@pytest.mark.parametrize("said", [
    "Don't record this.", "please do not record me", "no recording please",
    "Stop recording!", "stop the recording", "I don't want to be recorded",
    "I do not consent", "I'm not consenting to that", "I object to being recorded",
    "turn off the recording", "I don’t want this recorded", "can you not record this",
])
def test_objections(said: str) -> None:
    assert detect_objection(said)


@pytest.mark.parametrize("said", [
    "I don't mind being recorded", "sure, record away", "that's fine",
    "I have a record of the payment", "yes I consent", "what's on the record",
    "I wouldn't mind a quote, don't worry about the recording", "",
])
def test_not_objections(said: str) -> None:
    assert not detect_objection(said)


def test_all_party_keeps_only_after_the_announcement() -> None:
    consent = RecordingConsent(ALL_PARTY)
    assert consent.outcome().keep is False  # hung up during the announcement
    consent.announced(T)
    assert consent.caller_said("How much does it cost?", T) is ConsentDecision.RECORD
    outcome = consent.outcome()
    assert outcome.keep and outcome.consent_recorded
    assert "announced at 2026-12-07T15:00:00+00:00" in outcome.detail


def test_an_objection_at_any_time_discards_for_good() -> None:
    for settings in (ALL_PARTY, ONE_PARTY):
        consent = RecordingConsent(settings)
        consent.announced(T)
        assert consent.caller_said("stop recording", T) is ConsentDecision.DISCARD
        assert consent.caller_said("ok whatever", T) is ConsentDecision.DISCARD
        consent.announced(T)  # changes nothing now
        outcome = consent.outcome()
        assert not outcome.keep and "spoken objection" in outcome.detail
    keypress = RecordingConsent(ALL_PARTY)
    assert keypress.caller_objected(T, "key 9") is ConsentDecision.DISCARD
    assert "key 9" in keypress.outcome().detail


def test_one_party_keeps_without_an_announcement() -> None:
    outcome = RecordingConsent(ONE_PARTY).outcome()
    assert outcome.keep and "not announced" in outcome.detail


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_the_sink_keeps_or_discards_the_files_as_consent_says(tmp_path: Path) -> None:
    keys = KeyRing.parse(generate_key_text())
    for kept in (True, False):
        root = tmp_path / str(kept)
        recorder = CallRecorder(root, uuid.uuid4(), sample_rate=8000, keys=keys)
        await recorder.start()
        rows: list[RecordingFinalized] = []
        sink = RecorderSink(recorder, lambda row, rows=rows: rows.append(row) is None)
        sink.agent(bytes(1600))  # the announcement, kept
        consent = RecordingConsent(ALL_PARTY)
        consent.announced(T + timedelta(seconds=4))
        sink.caller(bytes(1600))
        if not kept:
            consent.caller_said("don't record me", T + timedelta(seconds=6))
        await sink.close(consent.outcome())
        if kept:
            assert len(rows) == 2 and all(r.consent_recorded for r in rows)
            assert all("caller continued" in (r.consent_detail or "") for r in rows)
            assert len(files(root)) == 2
        else:
            assert rows == [] and files(root) == []
