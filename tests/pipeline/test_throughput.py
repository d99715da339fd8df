"""The parts that let one process carry many calls: batched VAD, one Smart Turn thread, 40 ms
caller frames, and the transport's leading playout clock."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from typing import Any

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.frames.frames import InputAudioRawFrame

from reautod.pipeline.serializer import TwilioMediaSerializer
from reautod.pipeline.smart_turn import SmartTurnModel
from reautod.pipeline.transport import PlaybackHold, PlayoutClock
from reautod.pipeline.vad import VAD_PARAMS, EarlyVoice, SileroModel
from reautod.telephony.audio import ulaw_to_pcm16
from reautod.telephony.sim_script import Utterance

FRAME = 320  # bytes of 8 kHz PCM16 in a 20 ms Twilio frame


def _frames(utterance: Utterance) -> list[bytes]:
    pcm = ulaw_to_pcm16(utterance.ulaw).tobytes()
    return [pcm[i:i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


class _Recording(SileroVADAnalyzer):
    """pipecat's own analyzer (its own session, one window at a time), recording confidences."""

    def __init__(self) -> None:
        super().__init__(params=VAD_PARAMS)
        self.confidences: list[float] = []

    def voice_confidence(self, buffer: Any) -> float:
        confidence = float(np.asarray(super().voice_confidence(buffer)).reshape(-1)[0])
        self.confidences.append(confidence)
        return confidence


async def test_batched_vad_scores_every_call_as_pipecat_alone_would(
    short_speech: Utterance, long_speech: Utterance, other_speech: Utterance
) -> None:
    model = SileroModel()
    await model.load()
    try:
        calls = [_frames(u) for u in (short_speech, long_speech, other_speech)]
        ours = [await model.analyzer() for _ in calls]
        references = [_Recording() for _ in calls]
        for vad in (*ours, *references):
            vad.set_sample_rate(8000)
        states: list[list[VADState]] = [[] for _ in calls]
        expected: list[list[VADState]] = [[] for _ in calls]

        async def feed(i: int) -> None:
            for frame in calls[i]:
                states[i].append(await ours[i].analyze_audio(frame))
                expected[i].append(references[i]._run_analyzer(frame))

        await asyncio.gather(*(feed(i) for i in range(len(calls))))
        batcher = model.batcher
        assert batcher is not None
        assert batcher.runs < batcher.windows  # the calls' windows shared ONNX runs
        for i in range(len(calls)):
            assert states[i] == expected[i]  # the same speech/silence decisions, frame by frame
            assert VADState.SPEAKING in states[i]
        for vad in (*ours, *references):
            await vad.cleanup()
    finally:
        await model.close()


async def test_the_vad_says_voiced_before_its_state_machine_says_starting(
        short_speech: Utterance) -> None:
    model = SileroModel()
    await model.load()
    try:
        vad = await model.analyzer()
        vad.set_sample_rate(8000)
        assert isinstance(vad, EarlyVoice)
        frames = [bytes(FRAME)] * 25 + _frames(short_speech)  # half a second of silence first
        voiced_at = starting_at = None
        for i, frame in enumerate(frames):
            state = await vad.analyze_audio(frame)
            if voiced_at is None and vad.voiced_now:
                voiced_at = i
            if state != VADState.QUIET:
                starting_at = i
                break
        assert voiced_at is not None and starting_at is not None
        assert voiced_at < starting_at, (voiced_at, starting_at)
        await vad.cleanup()
    finally:
        await model.close()


async def test_a_failing_vad_run_reads_as_silence_and_never_stalls_the_call(
    caplog: pytest.LogCaptureFixture, short_speech: Utterance
) -> None:
    model = SileroModel()
    await model.load()
    try:
        vad = await model.analyzer()
        vad.set_sample_rate(8000)
        batcher = model.batcher
        assert batcher is not None

        class Broken:
            def run(self, *_: Any) -> Any:
                raise RuntimeError("onnx exploded")

        batcher._session = Broken()
        with caplog.at_level(logging.ERROR):
            states = await asyncio.wait_for(
                asyncio.gather(*(vad.analyze_audio(f) for f in _frames(short_speech)[:50])), 10)
        assert set(states) == {VADState.QUIET}
        assert "Silero VAD run failed (RuntimeError: onnx exploded)" in caplog.text
    finally:
        await model.close()


async def test_every_call_evaluates_turns_on_one_shared_thread() -> None:
    model = SmartTurnModel()
    await model.load()
    try:
        first, second = await model.analyzer(), await model.analyzer()
        assert first is not None and second is not None
        assert first._model_executor is second._model_executor
        threads = threading.active_count()
        await first.cleanup()  # a call ending leaves the shared thread to the others
        assert threading.active_count() == threads
        second.set_sample_rate(8000)
        speech = (np.sin(np.arange(16000) / 8) * 8000).astype(np.int16).tobytes()
        for i in range(0, len(speech), FRAME):
            second.append_audio(speech[i:i + FRAME], is_speech=True)
        state, _ = await second.analyze_end_of_turn()
        assert state is not None
    finally:
        await model.close()


def test_playout_starts_each_spurt_a_lead_ahead_then_keeps_real_time() -> None:
    clock = PlayoutClock(frame_s=0.02, lead_s=0.1)
    now = 100.0
    waits = [clock.after_frame(now) for _ in range(5)]
    assert waits == [0.0] * 5  # the lead (5 frames) goes at once
    assert clock.after_frame(now) == pytest.approx(0.0)
    assert clock.after_frame(now) == pytest.approx(0.02)  # then one frame per 20 ms
    assert clock.after_frame(now + 0.02) == pytest.approx(0.02)


def test_playout_catches_up_after_a_stall_shorter_than_the_lead() -> None:
    clock = PlayoutClock(frame_s=0.02, lead_s=0.1)
    t = 0.0
    for _ in range(20):  # steady state: each frame sent when due
        t += clock.after_frame(t)
    stalled = t + 0.08  # the loop stalled 80 ms: the caller's 100 ms buffer covered it
    waits = [clock.after_frame(stalled) for _ in range(5)]
    assert waits[:4] == pytest.approx([0.0] * 4)  # the 4 late frames go at once...
    assert waits[4] == pytest.approx(0.02)  # ...then the schedule (and the lead) is back


def test_playout_restarts_after_a_gap_or_a_clear() -> None:
    clock = PlayoutClock(frame_s=0.02, lead_s=0.1)
    for _ in range(10):
        clock.after_frame(0.0)
    # the next sentence comes 1 s later: the buffer ran dry, so it gets a fresh lead
    assert [clock.after_frame(1.0) for _ in range(6)] == pytest.approx([0.0] * 6)
    clock.restart()  # a barge-in's clear emptied the buffer
    assert [clock.after_frame(1.01) for _ in range(6)] == pytest.approx([0.0] * 6)


async def test_caller_audio_goes_down_the_pipeline_in_40_ms_frames() -> None:
    serializer = TwilioMediaSerializer("MZ1", call_id="c1")
    serializer._sample_rate = 8000  # what pipecat's setup sets from the pipeline's input rate
    recorded: list[bytes] = []

    class Sink:
        def caller(self, pcm: bytes) -> None:
            recorded.append(pcm)

        def agent(self, pcm: bytes) -> None:
            pass

    serializer.audio_sink = Sink()  # type: ignore[assignment]

    def media(ulaw: bytes) -> str:
        return json.dumps({"event": "media", "media": {"payload": base64.b64encode(ulaw).decode()}})

    frames = [await serializer.deserialize(media(bytes([i]) * 160)) for i in range(5)]
    assert frames[0] is None and frames[2] is None and frames[4] is None
    for frame, first in ((frames[1], 0), (frames[3], 2)):
        assert isinstance(frame, InputAudioRawFrame)
        assert len(frame.audio) == 640 and frame.sample_rate == 8000
        assert frame.audio == recorded[first] + recorded[first + 1]  # in order, nothing lost
    assert len(recorded) == 5  # a recording still gets every 20 ms as it arrives
    odd = await serializer.deserialize(media(b"\x7f" * 400))  # sizes need not be 160
    assert isinstance(odd, InputAudioRawFrame) and len(odd.audio) == 320 + 800


async def test_a_hold_waits_for_its_release_and_an_interruption_voids_the_waiting_frame() -> None:
    hold = PlaybackHold(max_hold_s=30)
    assert await hold.may_send()  # nothing held
    hold.set(True)
    waiting = asyncio.create_task(hold.may_send())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # held: the frame waits
    hold.set(False)  # a backchannel: the agent goes on with the same frame
    assert await waiting
    hold.set(True)
    waiting = asyncio.create_task(hold.may_send())
    await asyncio.sleep(0.01)
    hold.interrupted()  # a barge-in: the frame belonged before the `clear`
    assert not await waiting
    assert await hold.may_send()  # the reply after the barge-in goes out


async def test_a_lost_release_never_leaves_the_agent_mute() -> None:
    hold = PlaybackHold(max_hold_s=0.05)
    hold.set(True)
    assert await hold.may_send()
    assert await hold.may_send()  # and the hold is over
