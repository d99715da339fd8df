"""The agent's side of one call: LLM reply -> sentences -> TTS -> audio + marks, and call hygiene.

The LLM streams in a producer task; each finished sentence goes straight to TTS, so audio starts
with the first sentence. Every sentence is followed by a Twilio mark; the PlaybackTracker turns
the echoes into what the caller heard. On barge-in the reply task is cancelled (closing the
engine iterators cancels the engine work) and the context keeps only the heard part.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from reautod.call_events import CallInfo, CallObserver, CallState, TurnRecord
from reautod.config import AgentSettings, CallSettings, EngineSettings
from reautod.engines.base import AudioChunk, LanguageModel, TextToSpeech
from reautod.errors import EngineError, ReautodError
from reautod.pipeline.agent import DialogueAgent
from reautod.pipeline.frames import (
    HangupRequestFrame,
    MarkEchoFrame,
    ProtocolViolationFrame,
    StreamStopFrame,
    UserSpeechFrame,
    UserTurnFrame,
)
from reautod.pipeline.line_cache import LineAudioCache
from reautod.pipeline.playback import PlaybackTracker
from reautod.pipeline.sentences import SentenceSplitter
from reautod.pipeline.transport import OUT_FRAME_BYTES, OUT_RATE

log = logging.getLogger(__name__)

HYGIENE_PERIOD_S = 0.1
GOODBYE_GRACE_S = 10.0  # hang up this long after the goodbye even if its mark never comes back

ReplyKind = Literal["greeting", "answer", "reprompt", "goodbye", "apology", "dtmf"]
SCRIPTED: frozenset[ReplyKind] = frozenset({"reprompt", "goodbye", "apology"})


@dataclass
class _Reply:
    id: int
    kind: ReplyKind
    started_at: datetime
    origin: float | None = None  # end of caller speech (monotonic), for latencies
    stt_s: float | None = None
    parts: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    first_audio_at: float | None = None
    first_sent_at: float | None = None
    done: bool = False  # no more audio will be queued
    interrupted: bool = False
    reported: bool = False
    error: str | None = None


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _engine_error(err: BaseException, stage: str) -> ReautodError:
    if isinstance(err, ReautodError):
        return err
    if isinstance(err, TimeoutError):
        return EngineError(f"{stage} timed out", code=f"{stage}_timeout")
    return EngineError(f"{stage} failed: {type(err).__name__}", code=f"{stage}_failed")


class AgentResponder(FrameProcessor):
    """Speaks for the agent; owns the reply task, the playback tracker and the silence timers."""

    def __init__(
        self,
        *,
        info: CallInfo,
        agent: DialogueAgent,
        llm: LanguageModel,
        tts: TextToSpeech,
        settings_calls: CallSettings,
        settings_engines: EngineSettings,
        settings_agent: AgentSettings,
        observer: CallObserver,
        on_end: Callable[[str, int], None],
        greeting: asyncio.Task[list[AudioChunk]] | None = None,
        line_cache: LineAudioCache | None = None,
    ) -> None:
        super().__init__(name=f"agent-{info.call_id}")
        self.info = info
        self.agent = agent
        self._llm = llm
        self._tts = tts
        self._calls = settings_calls
        self._engines = settings_engines
        self._lines = settings_agent
        self._observer = observer
        self._on_end = on_end
        self._greeting = greeting
        self._line_cache = line_cache
        self.tracker = PlaybackTracker()
        self._resampler = create_stream_resampler()
        self._reply: _Reply | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._replies: dict[int, _Reply] = {}
        self._next_reply = 0
        self._turn_index = 0
        self._hygiene_task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._silent_s = 0.0
        self._user_speaking = False
        self._reprompted = False
        self._ending: str | None = None
        self._ending_since: float | None = None
        self._ended = False

    # -- state the other processors read

    def busy(self) -> bool:
        """The agent is generating or its audio is still playing."""
        generating = self._reply_task is not None and not self._reply_task.done()
        return generating or self.tracker.playing

    def on_audio_sent(self, now: float) -> None:
        """Serializer hook: an audio frame went out on the socket."""
        reply = self._reply
        if reply is not None and reply.first_sent_at is None and not reply.interrupted:
            reply.first_sent_at = now
            if reply.origin is not None:
                self.info.last_voice_to_voice_s = round(now - reply.origin, 4)
            self._set_state(CallState.SPEAKING)

    # -- pipecat plumbing

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._hygiene_task = self.create_task(self._hygiene(), name=f"hygiene-{self.info.call_id}")
            if self.info.direction == "outbound":
                self._start_reply("greeting", audio=self._greeting,
                                  text=self.agent.greeting)
            return
        if isinstance(frame, UserTurnFrame):
            self._on_user_turn(frame)
            return
        if isinstance(frame, UserSpeechFrame):
            self._user_speaking = frame.speaking
            self._touch()
            if frame.speaking:
                self._set_state(CallState.LISTENING if not self.busy() else self.info.state)
            return
        if isinstance(frame, MarkEchoFrame):
            self.tracker.echoed(frame.mark_name)
            self._finish_replies()
            return
        if isinstance(frame, InterruptionFrame):
            await self._interrupt()
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, InputDTMFFrame):
            await self._on_dtmf(str(frame.button.value))
            return
        if isinstance(frame, HangupRequestFrame):
            await self._end_politely(frame.reason)
            return
        if isinstance(frame, StreamStopFrame):
            self._end_now(frame.reason)
            return
        if isinstance(frame, ProtocolViolationFrame):
            self._end_now(f"protocol: {frame.reason}", frame.close_code)
            return
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self._shutdown()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self._shutdown()
        await super().cleanup()

    async def _shutdown(self) -> None:
        for task in (self._reply_task, self._hygiene_task):
            if task is not None and not task.done():
                await self.cancel_task(task)
        self._reply_task = self._hygiene_task = None
        if self._greeting is not None and not self._greeting.done():
            self._greeting.cancel()
        for reply in list(self._replies.values()):
            self._report(reply)

    # -- events

    def _on_user_turn(self, frame: UserTurnFrame) -> None:
        self._touch()
        self._turn_index += 1
        origin = frame.speech_ended_at
        stt_s = max(0.0, frame.transcript_at - origin)
        now_wall = datetime.now(UTC)
        spoken_s = max(0.0, frame.speech_ended_at - frame.speech_started_at)
        self._observer.on_turn(
            TurnRecord(
                call_id=self.info.call_id,
                index=self._turn_index,
                speaker="caller",
                text=frame.text,
                confidence=round(frame.confidence, 4) if frame.error is None else None,
                started_at=datetime.fromtimestamp(now_wall.timestamp() - spoken_s, UTC),
                ended_at=now_wall,
                latencies={"stt_s": round(stt_s, 4)},
                error=frame.error,
            )
        )
        self.info.turns += 1
        if frame.error is not None:
            self.info.engine_failures += 1
            self._start_reply("apology", text=self.agent.line(self._lines.apology),
                              origin=origin, stt_s=stt_s, error=frame.error)
            return
        self.info.last_utterance = frame.text
        if self._ending is not None:
            return
        self.agent.add_user(frame.text)
        self._start_reply("answer", origin=origin, stt_s=stt_s)

    async def _on_dtmf(self, digit: str) -> None:
        self._touch()
        self._observer.on_dtmf(self.info.call_id, digit)
        if self.busy():
            await self._interrupt()
            await self.push_frame(InterruptionFrame())
        self.agent.add_dtmf(digit)
        if self._ending is None:
            self._start_reply("dtmf")

    async def _interrupt(self) -> None:
        """Barge-in: stop generating, forget unplayed audio, keep only what was heard."""
        reply = self._reply
        if self._reply_task is not None and not self._reply_task.done():
            await self.cancel_task(self._reply_task)
        self._reply_task = None
        self.tracker.clear()
        await self._resampler.reset()
        if reply is None or reply.reported:
            return
        reply.interrupted = True
        reply.done = True
        heard = self.tracker.heard_text(reply.id)
        self.agent.set_assistant(reply.id, heard)
        self.info.barge_ins += 1
        self._observer.on_barge_in(self.info.call_id, heard)
        self._report(reply)
        self._set_state(CallState.LISTENING)

    # -- replies

    def _start_reply(
        self,
        kind: ReplyKind,
        *,
        text: str | None = None,
        audio: asyncio.Task[list[AudioChunk]] | None = None,
        origin: float | None = None,
        stt_s: float | None = None,
        error: str | None = None,
    ) -> None:
        if self._reply_task is not None and not self._reply_task.done():
            # A new turn while a reply is still generating: the old one is superseded.
            self._reply_task.cancel()
        self._next_reply += 1
        reply = _Reply(self._next_reply, kind, datetime.now(UTC), origin=origin, stt_s=stt_s,
                       error=error)
        self._replies[reply.id] = reply
        self._reply = reply
        self._set_state(CallState.THINKING if kind == "answer" else CallState.SPEAKING)
        self._reply_task = self.create_task(
            self._run_reply(reply, text=text, audio=audio), name=f"reply-{self.info.call_id}"
        )

    async def _run_reply(
        self, reply: _Reply, *, text: str | None, audio: asyncio.Task[list[AudioChunk]] | None
    ) -> None:
        try:
            if audio is not None and text is not None:
                try:
                    chunks = await audio
                except ReautodError as err:
                    log.warning("call %s: greeting synthesis failed (%s)", self.info.call_id,
                                err.code)
                    chunks = None
                if chunks:
                    await self._play(reply, text, chunks)
                else:
                    await self._speak(reply, text)
            elif text is not None and reply.kind in SCRIPTED:
                await self._say_line(reply, text)
            elif text is not None:
                await self._speak(reply, text)
            else:
                await self._generate(reply)
        except ReautodError as err:
            reply.error = err.code
            self.info.engine_failures += 1
            log.warning("call %s: reply failed (%s); apologising", self.info.call_id, err.code)
            try:
                await self._say_line(reply, self.agent.line(self._lines.apology))
            except ReautodError as again:
                log.warning("call %s: apology failed too (%s)", self.info.call_id, again.code)
        finally:
            reply.done = True
        self.agent.set_assistant(reply.id, " ".join(reply.parts))
        self._finish_replies()

    async def _generate(self, reply: _Reply) -> None:
        # pipecat's task manager logs and swallows a task's exception, so the producer hands
        # its failure over through the queue instead.
        sentences: asyncio.Queue[str | ReautodError | None] = asyncio.Queue()
        producer = self.create_task(self._llm_sentences(reply, sentences),
                                    name=f"llm-{self.info.call_id}")
        try:
            while (item := await sentences.get()) is not None:
                if isinstance(item, ReautodError):
                    raise item
                await self._speak(reply, item)
        finally:
            if not producer.done():
                await self.cancel_task(producer)

    async def _llm_sentences(
        self, reply: _Reply, out: asyncio.Queue[str | ReautodError | None]
    ) -> None:
        stream = self._llm.stream_chat(
            self.agent.messages(), call_id=self.info.call_id,
            max_tokens=self._engines.llm_max_tokens,
        )
        splitter = SentenceSplitter()
        try:
            async with asyncio.timeout(self._engines.llm_timeout_s):
                async for chunk in stream:
                    if reply.first_token_at is None:
                        reply.first_token_at = time.monotonic()
                    for piece in splitter.push(chunk.text):
                        await out.put(piece)
            if (rest := splitter.flush()) is not None:
                await out.put(rest)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            await out.put(_engine_error(err, "llm"))
        finally:
            await _aclose(stream)
            await out.put(None)

    async def _say_line(self, reply: _Reply, text: str) -> None:
        """A scripted line: played from the shared cache, or spoken and then cached."""
        if self._line_cache is None:
            await self._speak(reply, text)
            return
        cached = self._line_cache.get(text)
        if cached is not None:
            await self._play(reply, text, cached)
            return
        chunks: list[AudioChunk] = []
        await self._speak(reply, text, keep=chunks)
        self._line_cache.put(text, chunks)  # reached only when the whole line was synthesized

    async def _speak(self, reply: _Reply, text: str,
                     keep: list[AudioChunk] | None = None) -> None:
        stream = self._tts.synthesize(text, call_id=self.info.call_id)
        sent = 0
        try:
            async with asyncio.timeout(self._engines.tts_timeout_s):
                async for chunk in stream:
                    if keep is not None:
                        keep.append(chunk)
                    sent += await self._push_audio(reply, chunk)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            raise _engine_error(err, "tts") from err
        finally:
            await _aclose(stream)
        await self._end_sentence(reply, text, sent)

    async def _play(self, reply: _Reply, text: str, chunks: Sequence[AudioChunk]) -> None:
        sent = 0
        for chunk in chunks:
            sent += await self._push_audio(reply, chunk)
        await self._end_sentence(reply, text, sent)

    async def _push_audio(self, reply: _Reply, chunk: AudioChunk) -> int:
        if reply.first_audio_at is None:
            reply.first_audio_at = time.monotonic()
        if chunk.sample_rate <= 0 or len(chunk.pcm) % 2:
            raise EngineError("TTS returned malformed audio", code="tts_failed")
        # The one outbound resample: TTS rate to Twilio's 8 kHz.
        pcm = await self._resampler.resample(chunk.pcm, chunk.sample_rate, OUT_RATE)
        if pcm:
            await self.push_frame(TTSAudioRawFrame(audio=pcm, sample_rate=OUT_RATE,
                                                   num_channels=1))
        return len(pcm)

    async def _end_sentence(self, reply: _Reply, text: str, sent: int) -> None:
        # Pad to whole outbound frames so the mark goes right after this sentence's last audio
        # (a part-filled frame would wait in the transport for the next sentence's audio).
        pad = (-sent) % OUT_FRAME_BYTES
        if pad:
            await self.push_frame(TTSAudioRawFrame(audio=bytes(pad), sample_rate=OUT_RATE,
                                                   num_channels=1))
        name = self.tracker.new_mark(reply.id, text)
        reply.parts.append(text)
        self.info.last_utterance = text
        await self.push_frame(OutputTransportMessageFrame(message={
            "event": "mark", "streamSid": self.info.stream_sid, "mark": {"name": name},
        }))

    def _finish_replies(self) -> None:
        for reply in list(self._replies.values()):
            if reply.done and not reply.reported and self.tracker.pending_for(reply.id) == 0:
                self._report(reply)
                if reply.kind == "goodbye" and self._ending is not None:
                    self._end_now(self._ending)
        if not self.busy() and self._ending is None:
            self._set_state(CallState.LISTENING)

    def _report(self, reply: _Reply) -> None:
        if reply.reported:
            return
        reply.reported = True
        self._replies.pop(reply.id, None)
        self._turn_index += 1
        self.info.turns += 1
        latencies: dict[str, float] = {}
        if reply.origin is not None:
            marks = {
                "stt_s": reply.stt_s,
                "llm_first_token_s": (reply.first_token_at - reply.origin)
                if reply.first_token_at else None,
                "tts_first_audio_s": (reply.first_audio_at - reply.origin)
                if reply.first_audio_at else None,
                "voice_to_voice_s": (reply.first_sent_at - reply.origin)
                if reply.first_sent_at else None,
            }
            latencies = {k: round(v, 4) for k, v in marks.items() if v is not None}
        text = self.tracker.heard_text(reply.id) if reply.interrupted else " ".join(reply.parts)
        self._observer.on_turn(
            TurnRecord(
                call_id=self.info.call_id,
                index=self._turn_index,
                speaker="agent",
                text=text,
                confidence=None,
                started_at=reply.started_at,
                ended_at=datetime.now(UTC),
                latencies=latencies,
                interrupted=reply.interrupted,
                error=reply.error,
            )
        )

    # -- hygiene: silence, max duration, polite hang-up

    def _touch(self) -> None:
        """The caller did something: the silence count starts over."""
        self._silent_s = 0.0
        self._reprompted = False

    async def _hygiene(self) -> None:
        last = time.monotonic()
        while not self._ended:
            await asyncio.sleep(HYGIENE_PERIOD_S)
            now = time.monotonic()
            elapsed, last = now - last, now
            if self._ending is not None:
                if self._ending_since is not None and now - self._ending_since > GOODBYE_GRACE_S:
                    self._end_now(self._ending)
                continue
            if now - self._started >= self._calls.max_duration_s:
                await self._end_politely("max_duration")
                continue
            if self.busy() or self._user_speaking:
                continue  # only the caller's silence while the line is quiet counts
            self._silent_s += elapsed
            if self._silent_s >= self._calls.hangup_after_silence_s:
                await self._end_politely("silence")
            elif self._silent_s >= self._calls.reprompt_after_silence_s and not self._reprompted:
                self._reprompted = True
                self._start_reply("reprompt", text=self.agent.line(self._lines.reprompt))

    async def _end_politely(self, reason: str) -> None:
        if self._ending is not None:
            return
        self._ending = reason
        self._ending_since = time.monotonic()
        if self.busy():
            await self._interrupt()
            await self.push_frame(InterruptionFrame())
        self._set_state(CallState.ENDING)
        self._start_reply("goodbye", text=self.agent.line(self._lines.goodbye))

    def _end_now(self, reason: str, close_code: int = 1000) -> None:
        if self._ended:
            return
        self._ended = True
        self._set_state(CallState.ENDING)
        self._on_end(reason, close_code)

    def _set_state(self, state: CallState) -> None:
        if self.info.state in (CallState.ENDING, CallState.ENDED) and state not in (
            CallState.ENDING, CallState.ENDED
        ):
            return
        if self.info.state != state:
            self.info.state = state
            self._observer.on_call_state(self.info.call_id, state)
