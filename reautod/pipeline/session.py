"""One live call: builds its pipecat pipeline around the call's media, runs it, tears it down.

media in -> UserTurnProcessor (Silero VAD, Smart Turn v3, STT) -> CallHygiene (silence, max
duration, polite end) -> ConversationDriver (the call's Conversation) -> ReplyWriter (LLM,
sentences) -> SpeechOutput (TTS, one resample, marks, playback truth) -> media out.

The media (pipeline.media: Twilio's stream today) is all the session knows of how audio reaches
the caller. Everything the call starts is owned here and released when it ends. A caller who
hangs up right after speaking still has that turn heard: it is transcribed and given to the
conversation before the call is settled (a "stop calling me" and gone is still an opt-out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from reautod.call_events import CallInfo, CallObserver, CallState
from reautod.call_recording import CallRecording
from reautod.config import Settings
from reautod.conversation import (
    END_TIMEOUT_S,
    CallContext,
    CallHandoff,
    Conversation,
    Conversations,
)
from reautod.engines.base import LanguageModel, SpeechToText, TextToSpeech
from reautod.errors import ReautodError
from reautod.observability.logging import mask_name
from reautod.pipeline.driver import ConversationDriver
from reautod.pipeline.frames import HangupRequestFrame, PreparedAudio
from reautod.pipeline.greetings import PreparedGreetings, synthesize_all
from reautod.pipeline.hygiene import CallHygiene
from reautod.pipeline.line_cache import LineAudioCache
from reautod.pipeline.live import LiveCall
from reautod.pipeline.media import CallMedia, MediaHooks
from reautod.pipeline.recording import ConsentedRecording, GuardedSink
from reautod.pipeline.resumed import ResumedConversation
from reautod.pipeline.speech import SpeechOutput
from reautod.pipeline.turns import UserTurnProcessor
from reautod.pipeline.writer import ReplyWriter
from reautod.telephony.stream import CloseCode

log = logging.getLogger(__name__)

TEARDOWN_TIMEOUT_S = 10.0
PIPELINE_READY_TIMEOUT_S = 10.0
# The caller's last turn is transcribed and decided on within this after they hang up (an
# STT of a few seconds of speech, then the conversation's reply, on a loaded machine).
LAST_WORDS_TIMEOUT_S = 15.0
CALLER_LEFT = frozenset({"stop", "socket_closed"})  # end reasons: the caller's side is gone


class CallSession:
    """One call from its start to hang-up; `run()` returns the reason it ended."""

    def __init__(
        self,
        media: CallMedia,
        call: CallContext,
        *,
        stt: SpeechToText,
        llm: LanguageModel,
        tts: TextToSpeech,
        settings: Settings,
        observer: CallObserver,
        conversations: Conversations,
        turn_analyzer: BaseTurnAnalyzer | None,
        vad: VADAnalyzer,
        recording: CallRecording | None = None,
        line_cache: LineAudioCache | None = None,
        greetings: PreparedGreetings | None = None,
        handoff: CallHandoff | None = None,
    ) -> None:
        self.media = media
        self.call = call
        self._stt, self._llm, self._tts = stt, llm, tts
        self._settings = settings
        self._observer = observer
        self._conversations = conversations
        self._turn_analyzer = turn_analyzer
        self._vad = vad
        self._recording = recording
        self._line_cache = line_cache
        self._greetings = greetings  # synthesized while the phone rang (CallManager)
        self._handoff = handoff
        self.info = CallInfo(
            call_id=call.call_id,
            stream_sid=media.stream_id,
            call_sid=media.carrier_call_id,
            lead_name=call.lead_name,
            campaign=call.campaign,
            direction=call.direction,
            state=CallState.CONNECTING,
            started_at=datetime.now(UTC),
            input_warnings=media.input_warnings,
            transport=media.transport,
        )
        self.live = LiveCall(self.info, observer, self.end)
        self._end_event = asyncio.Event()
        self._ready = asyncio.Event()  # the pipeline has started
        self._end_reason = "ended"
        self._close_code: int = CloseCode.NORMAL
        self._worker: PipelineWorker | None = None
        self.driver: ConversationDriver | None = None
        self.speech: SpeechOutput | None = None
        self.turns: UserTurnProcessor | None = None
        self.conversation: Conversation | None = None  # once `run` has started it

    def end(self, reason: str, close_code: int = CloseCode.NORMAL) -> None:
        """End the call now (no goodbye); safe to call from anywhere, any number of times."""
        if not self._end_event.is_set():
            self._end_reason = reason
            self._close_code = close_code
            self._end_event.set()

    async def hangup(self, reason: str = "operator") -> None:
        """End the call politely: the agent says goodbye, then hangs up."""
        if not self._end_event.is_set():
            # A call still being set up gets its goodbye once its pipeline runs.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), PIPELINE_READY_TIMEOUT_S)
        if self._worker is not None and self._ready.is_set() and not self._end_event.is_set():
            await self._worker.queue_frame(HangupRequestFrame(reason=reason))
        else:
            self.end(reason)

    async def run(self) -> str:
        call_id = self.call.call_id
        started = time.monotonic()
        conversation = self._conversations.start(self.call)
        if self.call.resumed is not None:  # after a crash: history back, the resume line first
            conversation = ResumedConversation(conversation, self.call.resumed)
        self.conversation = conversation
        greeting = self._greeting()
        log.info("call %s started (lead %s, campaign %s, %s)", call_id,
                 mask_name(self.call.lead_name), self.call.campaign or "-", self.call.direction)
        self._observer.on_call_started(self.info)
        runner_task: asyncio.Task[Any] | None = None
        recording: ConsentedRecording | None = None
        try:
            # Opened before the pipeline starts, so the announcement is in the recording.
            recording = await self._open_recording()
            worker = self._build(conversation, greeting, recording)
            runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
            await runner.add_workers(worker)
            runner_task = asyncio.create_task(runner.run(), name=f"call-{call_id}")
            ended = asyncio.create_task(self._end_event.wait(), name=f"call-end-{call_id}")
            try:
                await asyncio.wait({runner_task, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ended
            if not self._end_event.is_set():
                self._end_reason = "pipeline_finished"
            elif self._end_reason in CALLER_LEFT and not runner_task.done():
                await self._hear_last_words()
            if self._close_code != CloseCode.NORMAL:
                # our code and reason; else the transport closes normally
                await self.media.close(self._close_code, self._end_reason)
            await worker.cancel(reason=self._end_reason)
            try:
                await asyncio.wait_for(asyncio.shield(runner_task), TEARDOWN_TIMEOUT_S)
            except TimeoutError:
                # The call ended for its own reason; a slow teardown does not change why (the
                # conversation's outcome stands). The runner is cancelled below.
                log.warning("call %s: the pipeline took over %.0fs to stop", call_id,
                            TEARDOWN_TIMEOUT_S)
        except asyncio.CancelledError:
            self._end_reason = "cancelled"
            raise
        except Exception as err:
            self._end_reason = f"failed: {type(err).__name__}"
            log.exception("call %s failed", call_id)
        finally:
            if runner_task is not None and not runner_task.done():
                runner_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner_task
            if greeting is not None:
                await _settle(greeting[1])
            await self.media.close(self._close_code, self._end_reason)
            await self._tell_ended(conversation)
            if recording is not None:
                outcome = await recording.close()
                log.info("call %s: recording %s (%s)", call_id,
                         "kept" if outcome.keep else "discarded", outcome.detail)
            self.info.state = CallState.ENDED
            duration = time.monotonic() - started
            log.info("call %s ended: %s after %.1fs", call_id, self._end_reason, duration)
            self._observer.on_call_ended(call_id, self._end_reason, round(duration, 3))
        return self._end_reason

    async def _hear_last_words(self) -> None:
        """The caller hung up: what they had just said still reaches the conversation (an
        opt-out above all: "stop calling me", then gone), within LAST_WORDS_TIMEOUT_S."""
        turns, driver = self.turns, self.driver
        if turns is None or driver is None:
            return
        try:
            async with asyncio.timeout(LAST_WORDS_TIMEOUT_S):
                await turns.flush()
                await driver.last_words(turns.turns_sent)
        except TimeoutError:
            log.warning("call %s: the caller's last words were not heard in %.0fs",
                        self.call.call_id, LAST_WORDS_TIMEOUT_S)

    def _greeting(self) -> tuple[str, PreparedAudio] | None:
        """The expected opening line and its audio: prepared when the call was placed if its
        text is this call's, else started now, while the pipeline is being built. Ours from
        here on; played if the conversation opens with that line."""
        if self.call.resumed is not None:
            return None  # a resumed call says its resume line, not the opening
        try:
            line = self._conversations.opening(self.call)
        except Exception:  # no head start; the opening is synthesized when it is said
            log.exception("call %s: no expected opening", self.call.call_id)
            return None
        if line is None and self._greetings is not None:
            # No opening known now: one decided before the call was placed (a playbook's,
            # by the call's own agent) is the text its audio was made for.
            text = self._greetings.text_of(self.call.call_id)
            prepared = self._greetings.take(self.call.call_id, text) if text else None
            return (text, prepared) if text and prepared is not None else None
        if line is None or line.audio is not None:
            return None
        if self._greetings is not None:
            prepared = self._greetings.take(self.call.call_id, line.text)
            if prepared is not None:
                return line.text, prepared
        return line.text, asyncio.create_task(
            synthesize_all(self._tts, line.text, call_id=self.call.call_id,
                           timeout_s=self._settings.engines.tts_timeout_s),
            name=f"greeting-{self.call.call_id}",
        )

    async def _tell_ended(self, conversation: Conversation) -> None:
        """The conversation's last word; its failure is logged, never the call's."""
        try:
            async with asyncio.timeout(END_TIMEOUT_S):
                await conversation.ended(self._end_reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: the conversation failed to end", self.call.call_id)

    async def _open_recording(self) -> ConsentedRecording | None:
        """The call's recording under its consent; a recorder that cannot open leaves the call
        unrecorded."""
        if self._recording is None:
            return None
        try:
            inner = await self._recording.open(self.info, self.media.format.sample_rate)
        except ReautodError as err:
            log.warning("call %s: not recorded (%s: %s)", self.call.call_id, err.code,
                        err.message)
            return None
        if inner is None:
            return None
        return ConsentedRecording(GuardedSink(self.call.call_id, inner),
                                  self._settings.recording_consent)

    def _build(self, conversation: Conversation, greeting: tuple[str, PreparedAudio] | None,
               recording: ConsentedRecording | None) -> PipelineWorker:
        call_id = self.call.call_id
        fmt = self.media.format
        engines = self._settings.engines
        live = self.live
        speech = SpeechOutput(live=live, tts=self._tts, tts_timeout_s=engines.tts_timeout_s,
                              line_cache=self._line_cache, sample_rate=fmt.sample_rate,
                              frame_bytes=fmt.out_frame_bytes)
        media_in, media_out = self.media.processors(
            MediaHooks(audio_sent=speech.on_audio_sent, ended=live.end),
            recording.sink if recording is not None else None)
        resumed = self.call.resumed
        driver = ConversationDriver(live=live, conversation=conversation, handoff=self._handoff,
                                    opening_audio=greeting, recording=recording,
                                    turns_before=resumed.next_turn - 1 if resumed else 0)
        speech.listener = driver
        turns = UserTurnProcessor(
            call_id=call_id,
            stt=self._stt,
            vad=self._vad,
            turn_analyzer=self._turn_analyzer,
            calls=self._settings.calls,
            stt_timeout_s=engines.stt_timeout_s,
            agent_busy=driver.busy,
        )
        self.driver, self.speech, self.turns = driver, speech, turns
        pipeline = Pipeline([
            media_in,
            turns,
            CallHygiene(live=live, calls=self._settings.calls),
            driver,
            ReplyWriter(call_id=call_id, llm=self._llm, max_tokens=engines.llm_max_tokens,
                        timeout_s=engines.llm_timeout_s),
            speech,
            media_out,
        ])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=fmt.sample_rate,
                                  audio_out_sample_rate=fmt.sample_rate),
            idle_timeout_secs=None,  # silence is ours to handle (CallHygiene)
            enable_rtvi=False,
            enable_turn_tracking=False,
            conversation_id=call_id,
            name=f"call-{call_id}",
        )

        @worker.event_handler("on_pipeline_started")
        async def _started(_worker: Any, _frame: Any) -> None:
            self._ready.set()

        self._worker = worker
        self.info.state = CallState.LISTENING
        return worker


async def _settle(task: PreparedAudio) -> None:
    """Cancel audio still being made; a failure was handled (or not needed) by speech."""
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    elif not task.cancelled():
        task.exception()  # retrieved
