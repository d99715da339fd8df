"""One live call: builds its pipecat pipeline on the media WebSocket, runs it, tears it down.

transport in (Twilio serializer: mu-law -> PCM, 8 kHz) -> UserTurnProcessor (Silero VAD at 8 kHz,
Smart Turn v3, STT) -> AgentResponder (agent context, LLM, sentences, TTS, marks) -> transport
out (PCM 8 kHz -> mu-law). Everything the call starts is owned here and released when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import WebSocket
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.workers.runner import WorkerRunner
from starlette.websockets import WebSocketState

from reautod.call_events import CallInfo, CallObserver, CallState
from reautod.call_recording import CallRecording
from reautod.config import Settings
from reautod.engines.base import AudioChunk, LanguageModel, SpeechToText, TextToSpeech
from reautod.errors import ReautodError
from reautod.observability.logging import mask_name
from reautod.pipeline.agent import DialogueAgent
from reautod.pipeline.frames import HangupRequestFrame
from reautod.pipeline.greetings import PreparedGreetings, synthesize_all
from reautod.pipeline.line_cache import LineAudioCache
from reautod.pipeline.opening import call_agent
from reautod.pipeline.recording import GuardedSink
from reautod.pipeline.responder import AgentResponder
from reautod.pipeline.serializer import TwilioMediaSerializer
from reautod.pipeline.transport import OUT_FRAME_MS, OUT_RATE, PacedWebsocketTransport
from reautod.pipeline.turns import UserTurnProcessor

log = logging.getLogger(__name__)

# Caller audio stays at Twilio's 8 kHz through the pipeline (Silero runs at 8 kHz): per-frame
# resampling was the biggest CPU cost per stream. Each finished turn is resampled once to 16 kHz
# for STT (Smart Turn resamples its own window), off the event loop.
IN_RATE = 8000
TEARDOWN_TIMEOUT_S = 10.0
PIPELINE_READY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StartInfo:
    """What Twilio's `start` event told us about the call (validated)."""

    stream_sid: str
    call_sid: str | None
    call_id: str
    lead_name: str
    campaign: str | None
    goal: str | None
    direction: Literal["outbound", "inbound"]
    opening: str | None = None  # rendered by the dialer for its campaign (pipeline.opening)


class CallSession:
    """One call from `start` to hang-up; `run()` returns the reason it ended."""

    def __init__(
        self,
        websocket: WebSocket,
        start: StartInfo,
        *,
        stt: SpeechToText,
        llm: LanguageModel,
        tts: TextToSpeech,
        settings: Settings,
        observer: CallObserver,
        turn_analyzer: BaseTurnAnalyzer | None,
        vad: VADAnalyzer,
        input_warnings: dict[str, int] | None = None,
        recording: CallRecording | None = None,
        line_cache: LineAudioCache | None = None,
        greetings: PreparedGreetings | None = None,
    ) -> None:
        self.websocket = websocket
        self.start = start
        self._stt, self._llm, self._tts = stt, llm, tts
        self._settings = settings
        self._observer = observer
        self._turn_analyzer = turn_analyzer
        self._vad = vad
        self._recording = recording
        self._line_cache = line_cache
        self._greetings = greetings  # synthesized while the phone rang (CallManager)
        self.info = CallInfo(
            call_id=start.call_id,
            stream_sid=start.stream_sid,
            call_sid=start.call_sid,
            lead_name=start.lead_name,
            campaign=start.campaign,
            direction=start.direction,
            state=CallState.CONNECTING,
            started_at=datetime.now(UTC),
            input_warnings=dict(input_warnings or {}),
        )
        self._end_event = asyncio.Event()
        self._ready = asyncio.Event()  # the pipeline has started
        self._end_reason = "ended"
        self._close_code = 1000
        self._worker: PipelineWorker | None = None
        self._serializer: TwilioMediaSerializer | None = None
        self.responder: AgentResponder | None = None
        self.turns: UserTurnProcessor | None = None

    def end(self, reason: str, close_code: int = 1000) -> None:
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
        call_id = self.start.call_id
        started = time.monotonic()
        agent = call_agent(self._settings.agent, lead_name=self.start.lead_name,
                           goal=self.start.goal, opening=self.start.opening)
        greeting: asyncio.Task[list[AudioChunk]] | None = None
        if self.start.direction == "outbound":
            # Prepared when the call was placed, if its text is this call's greeting; else
            # synthesized now, while the pipeline is still being built. Ours from here on.
            if self._greetings is not None:
                greeting = self._greetings.take(call_id, agent.greeting)
            if greeting is None:
                greeting = asyncio.create_task(
                    synthesize_all(self._tts, agent.greeting, call_id=call_id,
                                   timeout_s=self._settings.engines.tts_timeout_s),
                    name=f"greeting-{call_id}",
                )
        log.info("call %s started (lead %s, campaign %s, %s)", call_id,
                 mask_name(self.start.lead_name), self.start.campaign or "-",
                 self.start.direction)
        self._observer.on_call_started(self.info)
        runner_task: asyncio.Task[Any] | None = None
        sink: GuardedSink | None = None
        try:
            sink = await self._open_recording()
            worker = self._build(agent, self._vad, greeting, sink)
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
            if self._close_code != 1000:
                await self._close_socket()  # our code and reason; else pipecat closes with 1000
            await worker.cancel(reason=self._end_reason)
            await asyncio.wait_for(asyncio.shield(runner_task), TEARDOWN_TIMEOUT_S)
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
            if greeting is not None and not greeting.done():
                greeting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await greeting
            elif greeting is not None and not greeting.cancelled():
                greeting.exception()  # retrieved: a failed greeting was handled by the responder
            await self._close_socket()
            if sink is not None:
                await sink.close()
            self.info.state = CallState.ENDED
            duration = time.monotonic() - started
            log.info("call %s ended: %s after %.1fs", call_id, self._end_reason, duration)
            self._observer.on_call_ended(call_id, self._end_reason, round(duration, 3))
        return self._end_reason

    async def _open_recording(self) -> GuardedSink | None:
        """The call's recording sink; a recorder that cannot open leaves the call unrecorded."""
        if self._recording is None:
            return None
        # IN_RATE == OUT_RATE: both directions cross the socket at Twilio's 8 kHz
        try:
            inner = await self._recording.open(self.info, IN_RATE)
        except ReautodError as err:
            log.warning("call %s: not recorded (%s: %s)", self.start.call_id, err.code,
                        err.message)
            return None
        return GuardedSink(self.start.call_id, inner) if inner is not None else None

    def _build(self, agent: DialogueAgent, vad: VADAnalyzer,
               greeting: asyncio.Task[list[AudioChunk]] | None,
               sink: GuardedSink | None = None) -> PipelineWorker:
        call_id = self.start.call_id
        serializer = TwilioMediaSerializer(self.start.stream_sid, call_id=call_id,
                                           call_sid=self.start.call_sid,
                                           warnings=self.info.input_warnings)
        serializer.audio_sink = sink
        self._serializer = serializer
        transport = PacedWebsocketTransport(
            self.websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_in_sample_rate=IN_RATE,
                audio_out_enabled=True,
                audio_out_sample_rate=OUT_RATE,
                audio_out_10ms_chunks=OUT_FRAME_MS // 10,
                audio_out_end_silence_secs=0,
                serializer=serializer,
                allowed_origins=[],  # Twilio sends no Origin; the upgrade validator guards
            ),
        )
        responder = AgentResponder(
            info=self.info,
            agent=agent,
            llm=self._llm,
            tts=self._tts,
            settings_calls=self._settings.calls,
            settings_engines=self._settings.engines,
            settings_agent=self._settings.agent,
            observer=self._observer,
            on_end=self.end,
            greeting=greeting,
            line_cache=self._line_cache,
        )
        turns = UserTurnProcessor(
            call_id=call_id,
            stt=self._stt,
            vad=vad,
            turn_analyzer=self._turn_analyzer,
            calls=self._settings.calls,
            stt_timeout_s=self._settings.engines.stt_timeout_s,
            agent_busy=responder.busy,
        )
        serializer.on_audio_sent = responder.on_audio_sent
        serializer.on_stop = lambda: self.end("stop")
        self.responder, self.turns = responder, turns

        @transport.event_handler("on_client_disconnected")
        async def _gone(_transport: Any, _ws: Any) -> None:
            self.end("socket_closed")

        pipeline = Pipeline([transport.input(), turns, responder, transport.output()])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE),
            idle_timeout_secs=None,  # silence is ours to handle (re-prompt, polite hang-up)
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

    async def _close_socket(self) -> None:
        ws = self.websocket
        if ws.application_state == WebSocketState.CONNECTED and \
                ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the peer may already be gone; nothing to save
                await asyncio.wait_for(
                    ws.close(code=self._close_code, reason=self._end_reason[:120]), 2.0)
