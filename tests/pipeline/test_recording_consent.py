"""Recording consent through the real call path (media socket, pipeline, driver, recorder files):
the opening announces the recording and the announcement is in the agent's track, an objection
deletes the files at once and nothing more is recorded, and a call that ended before the
announcement was heard keeps nothing under all-party consent (one-party keeps it).

Each test runs one or two short simulated calls on the fake engines (a few seconds of real-time
streaming each): consent is decided by playback marks and caller turns, which only a whole call
produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reautod.call_events import CallInfo
from reautod.call_recording import ConsentOutcome
from reautod.config import DEFAULT_ANNOUNCEMENT, RecordingConsentSettings, Settings
from reautod.store.call_audio import RecorderSink
from reautod.store.call_observer import call_uuid
from reautod.store.recordings import CallRecorder
from reautod.store.records import RecordingFinalized
from reautod.telephony.simulator import (
    CallOptions,
    Hangup,
    Pause,
    Utterance,
    WaitForAgent,
    run_call,
)
from tests.pipeline.conftest import serve_media, wait_for
from tests.pipeline.fakes import FakeAudioSink, FakeEngines, FakeRecording, FakeTTS

pytestmark = pytest.mark.timeout(120)

STOPPED = RecordingConsentSettings().stopped


def settings(mode: str = "all_party") -> Settings:
    return Settings(calls={"reprompt_after_silence_s": 30.0, "hangup_after_silence_s": 60.0},
                    recording_consent={"mode": mode})


def engines() -> FakeEngines:
    # 8 kHz like the media, so the agent track holds each text's audio byte for byte
    return FakeEngines(tts=FakeTTS(sample_rate=8000, tone_per_text=True))


class TeeSink:
    """The store's real sink, with a FakeAudioSink beside it seeing what the pipeline sent."""

    def __init__(self, real: RecorderSink, tap: FakeAudioSink) -> None:
        self.real, self.tap = real, tap

    def caller(self, pcm: bytes) -> None:
        self.tap.caller(pcm)
        self.real.caller(pcm)

    def agent(self, pcm: bytes) -> None:
        self.tap.agent(pcm)
        self.real.agent(pcm)

    async def close(self, outcome: ConsentOutcome) -> None:
        await self.tap.close(outcome)
        await self.real.close(outcome)

    async def discard(self) -> None:
        await self.tap.discard()
        await self.real.discard()


@dataclass
class FilesRecording:
    """CallRecording with the store's recorder: real files under `root`, rows kept here."""

    root: Path
    rows: list[RecordingFinalized] = field(default_factory=list)
    taps: dict[str, FakeAudioSink] = field(default_factory=dict)

    async def open(self, info: CallInfo, sample_rate: int) -> TeeSink:
        recorder = CallRecorder(self.root, call_uuid(info.call_id), sample_rate=sample_rate)
        await recorder.start()
        sink = RecorderSink(recorder, lambda row: self.rows.append(row) is None)
        return TeeSink(sink, self.taps.setdefault(info.call_id, FakeAudioSink()))

    def files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file()]


async def call(served: Any, call_id: str, steps: list[Any]) -> None:
    await run_call(CallOptions(url=served.url, custom_parameters={"call_id": call_id}), steps)
    await wait_for(lambda: served.observer.reason(call_id) is not None)


async def test_the_opening_announces_the_recording_and_the_announcement_is_in_it(
        short_speech: Utterance) -> None:
    fakes = engines()
    recording = FakeRecording()
    async with serve_media(fakes, settings(), recording=recording) as served:
        await call(served, "a1", [WaitForAgent(timeout_s=30), short_speech,
                                  WaitForAgent(timeout_s=30), Hangup()])
    said = [text for c, text in fakes.tts.texts if c == "a1"]
    # the business is named first, then the announcement, in the one opening reply
    assert said[0].startswith("Hi there, this is Alex") and said[1] == DEFAULT_ANNOUNCEMENT
    assert said.count(DEFAULT_ANNOUNCEMENT) == 1  # heard in full: not said again
    opening = served.observer.turns_of("a1", "agent")[0].text
    assert opening.endswith(DEFAULT_ANNOUNCEMENT)
    sink = recording.sinks["a1"]
    assert fakes.tts.pcm(DEFAULT_ANNOUNCEMENT) in sink.agent_pcm
    [outcome] = sink.outcomes
    assert outcome.keep and outcome.consent_recorded and sink.discarded_at == []
    assert outcome.detail.startswith("all_party: recording announced at ")


async def test_an_objection_deletes_the_recording_and_nothing_more_is_recorded(
        short_speech: Utterance, tmp_path: Path) -> None:
    fakes = engines()
    fakes.stt.texts["o1"] = "Please don't record this call."
    recording = FilesRecording(tmp_path)
    async with serve_media(fakes, settings(), recording=recording) as served:
        await call(served, "o1", [WaitForAgent(timeout_s=30), short_speech,
                                  WaitForAgent(timeout_s=30), Pause(1.0), Hangup()])
    tap = recording.taps["o1"]
    [held] = tap.discarded_at
    assert held > 0 and len(tap.caller_pcm) + len(tap.agent_pcm) == held  # nothing after it
    assert tap.outcomes == []  # discarded, never closed as kept
    assert recording.files() == [] and recording.rows == []
    # the caller is told, first thing in the answer, and the call goes on
    answer = served.observer.turns_of("o1", "agent")[1].text
    assert answer.startswith(STOPPED) and fakes.llm.finished == 1
    assert served.observer.reason("o1") == "stop"


async def test_a_call_ended_before_the_announcement_keeps_nothing_under_all_party(
        tmp_path: Path) -> None:
    for mode in ("all_party", "one_party"):
        fakes = engines()
        fakes.tts.seconds_per_char = 0.05  # the opening lasts ~9 s; the caller leaves after 1
        recording = FilesRecording(tmp_path / mode)
        async with serve_media(fakes, settings(mode), recording=recording) as served:
            await call(served, "e1", [Pause(1.0), Hangup()])
        assert recording.taps["e1"].agent_pcm  # the opening was being recorded
        if mode == "all_party":
            assert recording.files() == [] and recording.rows == []
        else:
            assert len(recording.files()) == 2 and len(recording.rows) == 2
            assert all(r.consent_recorded for r in recording.rows)
            assert all("not announced" in (r.consent_detail or "") for r in recording.rows)
