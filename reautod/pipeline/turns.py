"""Caller turns: Silero VAD, Smart Turn v3 and our STT over the shared engine, plus barge-in.

When the VAD hears the caller stop, transcription starts at once and runs in parallel with the
Smart Turn model: when Smart Turn says the turn is complete the transcript is usually ready too.
If it says incomplete, the turn waits for more speech, or for the silence fallback.

Barge-in: caller speech while the agent is busy (generating or playing) interrupts it once it
has lasted `min_barge_in_s` and is not a backchannel ("mhm"); shorter noise never interrupts.
The agent's audio is held from the first window that sounds like speech by itself, before the
VAD's state machine confirms it (PlaybackHoldFrame, see pipeline.transport, and
`vad.EarlyVoice`), so the caller stops hearing it at once; a backchannel or noise releases
the hold and the agent goes on, a barge-in clears it.

The caller's last words: a caller who hangs up right after speaking ("stop calling me", then
gone) leaves a turn still in the VAD's stop wait, Smart Turn or the STT when the stream ends.
`flush()` finishes it (the whole buffer transcribed, no waiting for an end-of-turn verdict) so it
reaches the conversation before the call is settled.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
)
from pipecat.processors.frame_processor import (
    FrameDirection,
    FrameProcessor,
    FrameProcessorSetup,
)

from reautod.config import CallSettings
from reautod.engines.base import SpeechToText, Transcript
from reautod.errors import ReautodError
from reautod.pipeline.engine_calls import engine_error
from reautod.pipeline.frames import PlaybackHoldFrame, UserSpeechFrame, UserTurnFrame
from reautod.pipeline.vad import EarlyVoice
from reautod.telephony.audio import resample

log = logging.getLogger(__name__)

STT_RATE = 16000  # what SpeechToText.transcribe takes
# Audio kept from before the detected onset (the VAD fires `start_secs` after it and its
# threshold misses a soft first sound, "stop", "so"): without it the first word is clipped.
PREROLL_S = 0.3
FLUSH_QUIET_S = 0.1  # no caller audio for this long: what the stream carried has arrived
BACKCHANNEL_MAX_S = 1.2  # speech this long interrupts even if it started as "mhm"
_WORDS = re.compile(r"[a-z']+")


def normalise(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def is_backchannel(text: str, backchannels: list[str]) -> bool:
    said = normalise(text)
    return bool(said) and said in {normalise(b) for b in backchannels}


def _to_stt_audio(pcm16: bytes, sample_rate: int) -> npt.NDArray[np.float32]:
    audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
    if sample_rate != STT_RATE:
        # The one inbound resample, once per turn: 8 kHz phone audio to the STT's 16 kHz.
        audio = resample(audio, sample_rate, STT_RATE).astype(np.float32)
    return audio


async def transcribe(
    stt: SpeechToText, pcm16: bytes, *, call_id: str, timeout_s: float, sample_rate: int
) -> Transcript:
    """PCM16 caller audio to a transcript via the shared engine; failures become EngineError."""
    audio = await asyncio.to_thread(_to_stt_audio, pcm16, sample_rate)
    try:
        return await asyncio.wait_for(stt.transcribe(audio, call_id=call_id), timeout_s)
    except Exception as err:  # an engine bug is a failed turn, not a dead call
        raise engine_error(err, "stt") from err


class UserTurnProcessor(FrameProcessor):
    """Turns caller audio into UserTurnFrames; pushes InterruptionFrame on barge-in."""

    def __init__(
        self,
        *,
        call_id: str,
        stt: SpeechToText,
        vad: VADAnalyzer,
        turn_analyzer: BaseTurnAnalyzer | None,
        calls: CallSettings,
        stt_timeout_s: float,
        agent_busy: Callable[[], bool],
    ) -> None:
        super().__init__(name=f"user-turns-{call_id}")
        self._call_id = call_id
        self._stt = stt
        self._vad = vad
        self._turn = turn_analyzer
        self._calls = calls
        self._stt_timeout_s = stt_timeout_s
        self._agent_busy = agent_busy
        self._sample_rate = 8000
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._buffer = bytearray()
        self._in_turn = False
        self._vad_state = VADState.QUIET
        self._turn_started_at = 0.0
        self._segment_onset = 0.0
        self._speech_ended_at = 0.0
        self._barged = False
        self._holding = False  # the agent's audio is held: the caller may be cutting in
        self._backchannel_seen = False
        self._check_task: asyncio.Task[None] | None = None
        self._eval_task: asyncio.Task[None] | None = None
        self._stt_task: asyncio.Task[Transcript | ReautodError] | None = None
        self._stt_len = 0  # buffer length the pending transcription covers
        self._committing = False
        self._silence_fallback = False
        self._verdict: bool | None = None  # Smart Turn's word on the current pause
        self._segment = 0  # bumped whenever the caller (re)starts speaking
        self._stt_segment = -1
        self._last_audio_at = 0.0
        self.turns_sent = 0  # UserTurnFrames pushed (the driver counts those it took)
        self.backchannels_ignored = 0
        self.noise_ignored = 0

    # -- pipecat plumbing

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self._on_audio(frame.audio, frame.sample_rate)
            return  # caller audio stops here: nothing downstream wants it
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop_tasks()
        await self.push_frame(frame, direction)

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        self._sample_rate = setup.audio_in_sample_rate
        self._vad.set_sample_rate(self._sample_rate)
        if self._turn is not None:
            self._turn.set_sample_rate(self._sample_rate)

    async def cleanup(self) -> None:
        await self._stop_tasks()
        await self._vad.cleanup()
        if self._turn is not None:
            await self._turn.cleanup()
        await super().cleanup()

    async def _stop_tasks(self) -> None:
        for task in (self._check_task, self._eval_task, self._stt_task):
            if task is not None and not task.done():
                await self.cancel_task(task)
        self._check_task = self._eval_task = self._stt_task = None

    # -- audio

    async def _on_audio(self, audio: bytes, sample_rate: int) -> None:
        state = await self._vad.analyze_audio(audio)
        now = self._last_audio_at = time.monotonic()
        is_speech = state in (VADState.SPEAKING, VADState.STARTING)
        turn_state = (
            self._turn.append_audio(audio, is_speech) if self._turn is not None else None
        )
        if self._in_turn:
            self._buffer += audio
        else:
            self._preroll.append(audio)
            self._preroll_bytes += len(audio)
            keep = (self._vad.params.start_secs + PREROLL_S) * self._sample_rate * 2
            while self._preroll_bytes - len(self._preroll[0]) >= keep:
                self._preroll_bytes -= len(self._preroll.popleft())

        previous, self._vad_state = self._vad_state, state
        if state == VADState.QUIET and previous == VADState.QUIET and not self._in_turn:
            await self._early_hold()
        elif state == VADState.STARTING and previous == VADState.QUIET:
            # The first voiced window: hold the agent now rather than after the VAD's start
            # delay. A hold shorter than the playout lead is never heard (see pipeline.transport).
            if not self._barged and self._agent_busy():
                await self._hold(True)
        elif state == VADState.QUIET and previous == VADState.STARTING and not self._in_turn:
            await self._hold(False)  # a click or a breath: it never became speech
        elif state == VADState.SPEAKING and previous in (VADState.QUIET, VADState.STARTING):
            await self._on_speech_start(now - self._vad.params.start_secs)
        elif state == VADState.SPEAKING and previous == VADState.STOPPING:
            await self._on_speech_resume()
        elif state == VADState.STOPPING and previous == VADState.SPEAKING:
            self._speech_ended_at = now - len(audio) / (2 * self._sample_rate)
            await self._on_pause()
        elif state == VADState.QUIET and previous in (VADState.SPEAKING, VADState.STOPPING):
            if previous == VADState.SPEAKING:
                self._speech_ended_at = now - len(audio) / (2 * self._sample_rate)
            await self._on_speech_stop(now)

        if state in (VADState.SPEAKING, VADState.STOPPING):
            await self._maybe_barge_in(now)
        if turn_state == EndOfTurnState.COMPLETE and self._in_turn and not self._committing:
            # The silence fallback ran out. Smart Turn said "incomplete", or is still thinking
            # (a busy box): either way the turn is over; a running evaluation sees the flag.
            self._silence_fallback = True
            if self._eval_task is None and state == VADState.QUIET:
                self._eval_task = self.create_task(self._commit(),
                                                   name=f"turn-commit-{self._call_id}")

    async def _on_speech_start(self, onset: float) -> None:
        if not self._in_turn:
            self._in_turn = True
            self._turn_started_at = onset
            self._buffer = bytearray(b"".join(self._preroll))
            self._preroll.clear()
            self._preroll_bytes = 0
            self._barged = False
        await self._on_speech_resume()
        self._segment_onset = onset
        self._backchannel_seen = False
        await self.push_frame(UserSpeechFrame(speaking=True, at=onset))
        if not self._barged and self._agent_busy():
            await self._hold(True)

    async def _on_speech_resume(self) -> None:
        """The caller went on after a pause: whatever was worked out for the pause is void."""
        self._segment += 1
        self._verdict = None
        self._silence_fallback = False
        if self._eval_task is not None and not self._committing:
            await self.cancel_task(self._eval_task)
            self._eval_task = None

    async def _on_pause(self) -> None:
        """The VAD heard the caller stop (it confirms after stop_secs): start the work now."""
        if not self._in_turn:
            return
        # Transcription and Smart Turn run during the VAD's stop wait, in parallel, so that
        # little is left when the VAD confirms the end of speech.
        self._start_stt()
        if self._eval_task is None and not self._committing:
            self._eval_task = self.create_task(self._evaluate(), name=f"turn-eval-{self._call_id}")

    async def _on_speech_stop(self, now: float) -> None:
        if not self._in_turn:
            return
        await self.push_frame(UserSpeechFrame(speaking=False, at=self._speech_ended_at))
        if self._speech_ended_at - self._segment_onset < self._calls.min_barge_in_s:
            await self._hold(False)  # too short to cut in: noise, or a cough
        if self._check_task is not None and not self._check_task.done():
            await self.cancel_task(self._check_task)
        self._check_task = None
        self._start_stt()
        if self._committing or self._eval_task is not None:
            return  # a running evaluation commits when it is done
        if self._verdict is True or self._silence_fallback:
            self._eval_task = self.create_task(self._commit(), name=f"turn-commit-{self._call_id}")
        elif self._verdict is None:
            self._eval_task = self.create_task(self._evaluate(), name=f"turn-eval-{self._call_id}")
        # verdict False: Smart Turn heard an unfinished sentence; wait for more or the fallback

    def _start_stt(self) -> None:
        if self._stt_task is not None and self._stt_segment == self._segment:
            return  # already transcribing this stretch of speech
        if self._stt_task is not None and not self._stt_task.done():
            self._stt_task.cancel()  # older audio: superseded, its result is not wanted
        self._stt_len = len(self._buffer)
        self._stt_segment = self._segment
        self._stt_task = self.create_task(self._transcribe_safely(bytes(self._buffer)),
                                          name=f"stt-{self._call_id}")

    async def _transcribe_safely(self, pcm16: bytes) -> Transcript | ReautodError:
        # Returned, not raised: pipecat's task manager logs and swallows task exceptions.
        try:
            return await transcribe(self._stt, pcm16, call_id=self._call_id,
                                    timeout_s=self._stt_timeout_s, sample_rate=self._sample_rate)
        except ReautodError as err:
            return err

    async def _evaluate(self) -> None:
        complete = True
        if self._turn is not None:
            state, _ = await self._turn.analyze_end_of_turn()
            complete = state == EndOfTurnState.COMPLETE
        self._verdict = complete
        if self._vad_state == VADState.QUIET and (complete or self._silence_fallback):
            await self._commit()  # _commit's finally clears _eval_task
        else:
            self._eval_task = None  # the VAD has not confirmed yet, or Smart Turn said wait

    # -- barge-in

    async def _maybe_barge_in(self, now: float) -> None:
        if self._barged or not self._agent_busy():
            return
        spoken = now - self._segment_onset
        if spoken < self._calls.min_barge_in_s:
            return
        if not self._calls.backchannels or spoken >= BACKCHANNEL_MAX_S:
            await self._barge_in()
        elif not self._backchannel_seen and self._check_task is None:
            self._check_task = self.create_task(
                self._check_backchannel(), name=f"barge-check-{self._call_id}"
            )

    async def _check_backchannel(self) -> None:
        try:
            transcript = await transcribe(
                self._stt, bytes(self._buffer), call_id=self._call_id,
                timeout_s=self._stt_timeout_s, sample_rate=self._sample_rate,
            )
            backchannel = is_backchannel(transcript.text, self._calls.backchannels)
        except ReautodError as err:
            log.warning("call %s: barge-in check failed (%s); interrupting", self._call_id,
                        err.code)
            backchannel = False
        finally:
            self._check_task = None
        if backchannel:
            self._backchannel_seen = True
            await self._hold(False)
        elif not self._barged and self._agent_busy():
            await self._barge_in()

    async def _barge_in(self) -> None:
        self._barged = True
        self._holding = False  # the interruption drops what was held
        await self.push_frame(InterruptionFrame())

    async def _early_hold(self) -> None:
        """Hold the agent on the first window that sounds like speech by itself, before the
        VAD's state machine (whose smoothed volume lags a clean onset by ~120 ms) says
        STARTING; let go at the next window that does not."""
        if not isinstance(self._vad, EarlyVoice) or self._barged:
            return
        if self._vad.voiced_now:
            if self._agent_busy():
                await self._hold(True)
        elif self._holding:
            await self._hold(False)

    async def _hold(self, hold: bool) -> None:
        if hold != self._holding:
            self._holding = hold
            await self.push_frame(PlaybackHoldFrame(hold=hold))

    # -- end of turn

    async def flush(self) -> None:
        """The caller hung up: their unfinished turn, if any, is committed now (pushed as a
        UserTurnFrame, `turns_sent` counts it). Waits for the audio already received to stop
        coming in (the transport's queue), then for a commit in flight or makes one."""
        left = self._last_audio_at + FLUSH_QUIET_S - time.monotonic()
        while left > 0:
            await asyncio.sleep(left)
            left = self._last_audio_at + FLUSH_QUIET_S - time.monotonic()  # audio came in since
        if self._check_task is not None and not self._check_task.done():
            await self.cancel_task(self._check_task)
        self._check_task = None
        if self._eval_task is not None and self._committing:
            await asyncio.wait({self._eval_task})  # its turn is on its way
        elif self._eval_task is not None:
            await self.cancel_task(self._eval_task)  # no verdict needed: the turn is over
            self._eval_task = None
        if self._in_turn and self._buffer:
            if self._vad_state in (VADState.STARTING, VADState.SPEAKING):
                self._speech_ended_at = self._last_audio_at  # cut off mid-word
            await self._commit(final=True)

    async def _commit(self, *, final: bool = False) -> None:
        """The turn is over: push its transcript. `final`: the caller is gone, so nothing they
        said is taken for a backchannel or noise under the agent's speech."""
        self._committing = True
        try:
            self._start_stt()
            stt_task = self._stt_task
            covered = self._stt_len
            assert stt_task is not None  # set by _start_stt
            error: str | None = None
            text, confidence = "", 0.0
            outcome = await stt_task
            if isinstance(outcome, ReautodError):
                error = outcome.code
                log.warning("call %s: transcription failed (%s)", self._call_id, outcome.code)
            else:
                text, confidence = outcome.text.strip(), outcome.confidence
            transcript_at = time.monotonic()
            spoken = self._speech_ended_at - self._turn_started_at
            busy = self._agent_busy()
            keep = True
            if error is None and busy and not self._barged and not final:
                if is_backchannel(text, self._calls.backchannels):
                    self.backchannels_ignored += 1
                    keep = False
                elif spoken < self._calls.min_barge_in_s:
                    self.noise_ignored += 1
                    keep = False
                else:
                    await self._barge_in()
            if error is None and not text:
                self.noise_ignored += 1
                keep = False
            await self._hold(False)  # decided: a barge-in has cleared it already, else go on
            if keep:
                self.turns_sent += 1
                await self.push_frame(
                    UserTurnFrame(
                        text=text,
                        confidence=confidence,
                        speech_started_at=self._turn_started_at,
                        speech_ended_at=self._speech_ended_at,
                        transcript_at=transcript_at,
                        error=error,
                    )
                )
            # Audio that arrived while we transcribed starts the next turn.
            rest = bytes(self._buffer[covered:])
            self._buffer = bytearray()
            self._preroll.clear()
            self._preroll.append(rest)
            self._preroll_bytes = len(rest)
            self._in_turn = self._vad_state in (VADState.SPEAKING, VADState.STOPPING)
            if self._in_turn:
                self._buffer = bytearray(rest)
                self._barged = False
            self._stt_task = None
            self._stt_len = 0
            self._stt_segment = -1
            self._verdict = None
            if self._turn is not None:
                self._turn.clear()
        finally:
            self._committing = False
            self._silence_fallback = False
            self._eval_task = None
