"""The UserTurnProcessor alone, on a VAD whose verdicts the test scripts: the audio a turn is
transcribed from starts before the VAD fired, and a turn cut short by a hang-up is flushed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pipecat.audio.vad.vad_analyzer import VADParams, VADState
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager

from reautod.config import CallSettings
from reautod.pipeline.frames import PlaybackHoldFrame, UserTurnFrame
from reautod.pipeline.turns import PREROLL_S, UserTurnProcessor
from tests.pipeline.fakes import FakeSTT

FRAME_S = 0.02
FRAME = bytes(2 * 160)  # 20 ms of 8 kHz PCM16


@dataclass
class ScriptedVAD:
    """Implements what UserTurnProcessor uses of a VADAnalyzer; says `states`, one per frame,
    and whether each frame's window sounded like speech by itself (`voiced`, default never)."""

    states: Iterator[VADState]
    params: VADParams = field(default_factory=VADParams)
    voiced: Iterator[bool] | None = None
    voiced_now: bool = False

    def set_sample_rate(self, sample_rate: int) -> None:
        pass

    async def analyze_audio(self, buffer: bytes) -> VADState:
        self.voiced_now = next(self.voiced) if self.voiced is not None else False
        return next(self.states)

    async def cleanup(self) -> None:
        pass


class Turns(UserTurnProcessor):
    """Keeps what it pushes instead of passing it on."""

    pushed: list[Frame]

    async def push_frame(self, frame: Frame,
                         direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        self.pushed.append(frame)


async def turns_on(states: list[VADState], stt: FakeSTT, *, voiced: list[bool] | None = None,
                   agent_busy: bool = False) -> Turns:
    vad = ScriptedVAD(iter(states), voiced=iter(voiced) if voiced is not None else None)
    turns = Turns(call_id="t1", stt=stt, vad=vad, turn_analyzer=None,  # type: ignore[arg-type]
                  calls=CallSettings(), stt_timeout_s=5.0, agent_busy=lambda: agent_busy)
    turns.pushed = []
    await turns.setup(FrameProcessorSetup(clock=SystemClock(), task_manager=TaskManager(),
                                          pipeline_worker=None,  # type: ignore[arg-type]
                                          audio_in_sample_rate=8000))
    for _ in states:
        await turns.process_frame(InputAudioRawFrame(audio=FRAME, sample_rate=8000,
                                                     num_channels=1), FrameDirection.DOWNSTREAM)
    return turns


def frames(seconds: float) -> int:
    return round(seconds / FRAME_S)


async def test_a_turn_keeps_the_audio_from_before_the_vad_fired() -> None:
    start = VADParams().start_secs
    states = ([VADState.QUIET] * frames(2.0) + [VADState.STARTING] * frames(start)
              + [VADState.SPEAKING] * frames(0.6))
    stt = FakeSTT(text="Stop calling me.")
    turns = await turns_on(states, stt)
    await turns.flush()
    [turn] = [f for f in turns.pushed if isinstance(f, UserTurnFrame)]
    assert turn.text == "Stop calling me."
    # The VAD confirmed speech `start_secs` after its onset; PREROLL_S more before that onset
    # is kept for a soft first sound, so the transcript starts before the detected onset.
    heard_s = stt.calls[-1][1]
    assert heard_s == pytest.approx(start + PREROLL_S + 0.6, abs=2 * FRAME_S), heard_s
    await turns.cleanup()


async def test_flush_commits_speech_the_vad_never_saw_end() -> None:
    stt = FakeSTT(text="Please don't call again.")
    turns = await turns_on([VADState.QUIET] * 5 + [VADState.SPEAKING] * frames(1.0), stt)
    assert not [f for f in turns.pushed if isinstance(f, UserTurnFrame)]  # still speaking
    await turns.flush()
    assert [f.text for f in turns.pushed if isinstance(f, UserTurnFrame)] == [
        "Please don't call again."]
    assert turns.turns_sent == 1
    await turns.flush()  # nothing more pending: nothing more pushed
    assert turns.turns_sent == 1
    await turns.cleanup()


async def test_flush_without_speech_pushes_nothing() -> None:
    stt = FakeSTT()
    turns = await turns_on([VADState.QUIET] * 10, stt)
    await turns.flush()
    assert turns.turns_sent == 0 and stt.calls == []
    await turns.cleanup()


def holds(turns: Turns) -> list[bool]:
    return [f.hold for f in turns.pushed if isinstance(f, PlaybackHoldFrame)]


async def test_the_agent_is_held_from_the_first_window_that_sounds_like_speech() -> None:
    # the fourth window sounds like speech; the state machine still says QUIET
    turns = await turns_on([VADState.QUIET] * 4, FakeSTT(), voiced=[False] * 3 + [True],
                           agent_busy=True)
    assert holds(turns) == [True]
    await turns.cleanup()


async def test_an_early_hold_is_let_go_when_the_next_window_is_not_speech() -> None:
    states = [VADState.QUIET] * 6
    turns = await turns_on(states, FakeSTT(), voiced=[False, True, False, False, True, False],
                           agent_busy=True)
    assert holds(turns) == [True, False, True, False]
    await turns.cleanup()


async def test_no_early_hold_while_the_agent_is_silent() -> None:
    turns = await turns_on([VADState.QUIET] * 3, FakeSTT(), voiced=[True] * 3)
    assert holds(turns) == []
    await turns.cleanup()
