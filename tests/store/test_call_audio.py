"""The daemon's recording sink: both directions on one timeline, rows handed to the queue."""

from __future__ import annotations

import uuid
import wave
from pathlib import Path

import numpy as np

from reautod.call_recording import ConsentOutcome
from reautod.store.call_audio import RecorderSink
from reautod.store.recordings import CallRecorder
from reautod.store.records import RecordingFinalized

RATE = 8000
FRAME = 160  # samples in 20 ms


def tone(frames: int) -> bytes:
    return np.full(frames * FRAME, 3000, dtype=np.int16).tobytes()


def silence(frames: int) -> bytes:
    return bytes(frames * FRAME * 2)


async def test_agent_spurts_land_where_they_were_said(tmp_path: Path) -> None:
    submitted: list[RecordingFinalized] = []

    def submit(record: RecordingFinalized) -> bool:
        submitted.append(record)
        return True

    recorder = CallRecorder(tmp_path, uuid.uuid4(), sample_rate=RATE)
    await recorder.start()
    sink = RecorderSink(recorder, submit)
    sink.caller(silence(50))  # 1 s of the line before the agent speaks
    sink.agent(tone(10))
    sink.caller(silence(12))
    sink.agent(tone(15))  # lagging the caller track by 2 frames is jitter: no gap mid-spurt
    sink.caller(silence(13))
    sink.caller(silence(50))  # the agent is quiet for a second
    sink.agent(tone(25))
    await sink.close(ConsentOutcome(True, True, "one_party: test"))

    assert sorted(r.direction for r in submitted) == ["inbound", "outbound"]
    assert all(r.consent_recorded and r.consent_detail == "one_party: test" for r in submitted)
    tracks = {}
    for record in submitted:
        with wave.open(record.path, "rb") as wav:
            tracks[str(record.direction)] = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    assert len(tracks["inbound"]) == 125 * FRAME
    agent = tracks["outbound"]
    second = RATE
    assert not agent[:second].any() and agent[second:second + 25 * FRAME].all()
    assert not agent[second + 25 * FRAME:2 * second + 25 * FRAME].any()
    assert agent[2 * second + 25 * FRAME:].all() and len(agent) == 150 * FRAME
