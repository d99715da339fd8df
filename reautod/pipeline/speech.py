"""Speech and playback truth: the pieces of each reply become audio, and mark echoes become what
the caller heard.

Each piece (a sentence from the LLM, or an approved line) is synthesized by the shared TTS, or
played from audio made earlier (a prepared greeting, a line's own audio, the shared line cache),
resampled once to the media's rate, padded to whole output frames, and followed by a playback
mark. The PlaybackTracker turns the echoes into heard text; a reply is over when it has ended and
its last mark came back, or when the caller cut in. Its listener (the ConversationDriver) is told
at once, in the same step as the echo or interruption that decided it.

A piece that fails to synthesize ends its reply in the listener's fallback line (the apology);
the writer is told upstream to stop writing that reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import Frame, InterruptionFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection

from reautod.call_events import CallState
from reautod.conversation import Line
from reautod.engines.base import AudioChunk, AudioEncoding, TextToSpeech
from reautod.engines.scheduler import ahead_of_need
from reautod.errors import EngineError, ReautodError
from reautod.pipeline.engine_calls import aclose, engine_error
from reautod.pipeline.frames import (
    MarkEchoFrame,
    PlaybackMarkFrame,
    PreparedAudio,
    ReplyEndFrame,
    ReplyFailedFrame,
    ReplyStartFrame,
    ReplyTiming,
    SayFrame,
    SpeechFailedFrame,
)
from reautod.pipeline.line_cache import LineAudioCache
from reautod.pipeline.live import LiveCall
from reautod.pipeline.playback import PlaybackTracker
from reautod.pipeline.processor import CallProcessor
from reautod.telephony.audio import ulaw_to_pcm16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyPlayback:
    """What became of one reply's speech: its pieces as spoken, what the caller heard of them."""

    reply_id: int
    said: tuple[str, ...]
    heard: str
    interrupted: bool
    error: str | None  # the TTS or LLM failure that ended it in the fallback line


class PlaybackListener(Protocol):
    """Who speech reports to (the ConversationDriver)."""

    async def reply_played(self, playback: ReplyPlayback) -> None: ...

    def fallback(self, code: str) -> Line:
        """The line to say when reply speech fails with engine code `code`."""
        ...


@dataclass
class _Speaking:
    id: int
    timing: ReplyTiming
    said: list[str] = field(default_factory=list)
    done: bool = False  # nothing more will be queued
    failed: bool = False  # the fallback was (or is being) said; the rest is dropped
    error: str | None = None


class SpeechOutput(CallProcessor):
    """Speaks replies and keeps the playback truth of one call."""

    def __init__(self, *, live: LiveCall, tts: TextToSpeech, tts_timeout_s: float,
                 line_cache: LineAudioCache | None, sample_rate: int, frame_bytes: int) -> None:
        super().__init__(name=f"speech-{live.call_id}")
        self._live = live
        self._tts = tts
        self._tts_timeout_s = tts_timeout_s
        self._line_cache = line_cache
        self._rate = sample_rate
        self._frame_bytes = frame_bytes
        self.tracker = PlaybackTracker()
        self.listener: PlaybackListener | None = None  # set when the pipeline is built
        self._resampler = create_stream_resampler()
        self._replies: dict[int, _Speaking] = {}
        self._sending: _Speaking | None = None  # the reply whose audio went out last

    def on_audio_sent(self, now: float) -> None:
        """Media hook: an agent audio frame went out to the caller at `now` (monotonic)."""
        reply = self._sending
        if reply is not None and reply.timing.first_sent_at is None:
            reply.timing.first_sent_at = now
            if reply.timing.origin is not None:
                self._live.info.last_voice_to_voice_s = round(now - reply.timing.origin, 4)
            self._live.set_state(CallState.SPEAKING)

    # -- pipecat plumbing

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, ReplyStartFrame):
            self._replies[frame.reply_id] = _Speaking(frame.reply_id, frame.timing)
        elif isinstance(frame, SayFrame):
            reply = self._replies.get(frame.reply_id)
            if reply is not None and not reply.failed:  # else cut or failed: not said
                await self._say(reply, frame.line, frame.prepared)
        elif isinstance(frame, ReplyFailedFrame):
            reply = self._replies.get(frame.reply_id)
            if reply is not None:
                await self._fail(reply, frame.code)
        elif isinstance(frame, ReplyEndFrame):
            reply = self._replies.get(frame.reply_id)
            if reply is not None:
                reply.done = True
                await self._report_finished()
        elif isinstance(frame, MarkEchoFrame):
            self.tracker.echoed(frame.mark_name)
            await self._report_finished()
        elif isinstance(frame, InterruptionFrame):
            # pipecat has already cancelled the piece being spoken and dropped queued ones.
            self.tracker.clear()  # the media drops what it had not played
            await self._resampler.reset()
            self._sending = None
            for reply in list(self._replies.values()):
                await self._report(reply, interrupted=True)
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def release(self) -> None:
        """The call is over: every reply still open is reported as it stands."""
        for reply in list(self._replies.values()):
            await self._report(reply, interrupted=False)

    # -- speaking

    async def _say(self, reply: _Speaking, line: Line, prepared: PreparedAudio | None) -> None:
        try:
            await self._speak(reply, line, prepared)
        except ReautodError as err:
            await self._fail(reply, err.code)

    async def _fail(self, reply: _Speaking, code: str) -> None:
        if reply.failed:
            return
        reply.failed = True
        reply.error = code
        log.warning("call %s: reply failed (%s); apologising", self._live.call_id, code)
        await self.push_frame(SpeechFailedFrame(reply_id=reply.id, code=code),
                              FrameDirection.UPSTREAM)
        if self.listener is None:
            return
        try:
            await self._speak(reply, self.listener.fallback(code), None)
        except ReautodError as again:
            log.warning("call %s: apology failed too (%s)", self._live.call_id, again.code)

    async def _speak(self, reply: _Speaking, line: Line, prepared: PreparedAudio | None) -> None:
        """One piece: its own audio, audio being prepared, the shared cache, or the TTS."""
        if line.audio is not None:
            await self._play(reply, line.text, line.audio)
            return
        if prepared is not None:
            chunks = await self._prepared(prepared)
            if chunks:
                await self._play(reply, line.text, chunks)
                return
        if not line.shared or self._line_cache is None:
            await self._synthesize(reply, line.text)
            return
        cached = self._line_cache.get(line.text)
        if cached is not None:
            await self._play(reply, line.text, cached)
            return
        kept: list[AudioChunk] = []
        await self._synthesize(reply, line.text, keep=kept)
        self._line_cache.put(line.text, kept)  # reached only when the whole line was synthesized

    async def _prepared(self, prepared: PreparedAudio) -> list[AudioChunk] | None:
        """The audio made ahead, or None when it failed (the piece is synthesized now)."""
        await asyncio.wait({prepared})  # its failure or cancellation is not ours
        if prepared.cancelled():
            return None
        err = prepared.exception()
        if err is not None:
            code = err.code if isinstance(err, ReautodError) else type(err).__name__
            log.warning("call %s: greeting synthesis failed (%s)", self._live.call_id, code)
            return None
        return prepared.result()

    async def _synthesize(self, reply: _Speaking, text: str,
                          keep: list[AudioChunk] | None = None) -> None:
        stream = self._tts.synthesize(text, call_id=self._live.call_id)
        sent = 0
        # Once the reply's first audio is out the caller hears it while this piece is made:
        # other calls' callers, waiting in silence, go first.
        try:
            async with asyncio.timeout(self._tts_timeout_s):
                with ahead_of_need(reply.timing.first_audio_at is not None):
                    async for chunk in stream:
                        if keep is not None:
                            keep.append(chunk)
                        sent += await self._push_audio(reply, chunk)
        except Exception as err:
            raise engine_error(err, "tts") from err
        finally:
            await aclose(stream)
        await self._end_piece(reply, text, sent)

    async def _play(self, reply: _Speaking, text: str, chunks: Sequence[AudioChunk]) -> None:
        sent = 0
        for chunk in chunks:
            sent += await self._push_audio(reply, chunk)
        await self._end_piece(reply, text, sent)

    async def _push_audio(self, reply: _Speaking, chunk: AudioChunk) -> int:
        if reply.timing.first_audio_at is None:
            reply.timing.first_audio_at = time.monotonic()
        if chunk.encoding is AudioEncoding.MULAW:
            # The premium voice's 8 kHz mu-law: decoded once here, encoded again by a Twilio
            # media (mu-law to PCM and back is lossless), so every media takes PCM.
            pcm16 = ulaw_to_pcm16(chunk.pcm).tobytes()
        elif len(chunk.pcm) % 2:
            raise EngineError("TTS returned malformed audio", code="tts_failed")
        else:
            pcm16 = chunk.pcm
        if chunk.sample_rate <= 0:
            raise EngineError("TTS returned malformed audio", code="tts_failed")
        # The one outbound resample: TTS rate to the media's (none when they are the same).
        pcm = await self._resampler.resample(pcm16, chunk.sample_rate, self._rate)
        if pcm:
            self._sending = reply
            await self.push_frame(TTSAudioRawFrame(audio=pcm, sample_rate=self._rate,
                                                   num_channels=1))
        return len(pcm)

    async def _end_piece(self, reply: _Speaking, text: str, sent: int) -> None:
        # Pad to whole output frames so the mark goes right after this piece's last audio
        # (a part-filled frame would wait in the transport for the next piece's audio).
        pad = (-sent) % self._frame_bytes
        if pad:
            await self.push_frame(TTSAudioRawFrame(audio=bytes(pad), sample_rate=self._rate,
                                                   num_channels=1))
        reply.said.append(text)
        self._live.info.last_utterance = text
        await self.push_frame(PlaybackMarkFrame(mark_name=self.tracker.new_mark(reply.id, text)))

    # -- reporting

    async def _report_finished(self) -> None:
        for reply in list(self._replies.values()):
            if reply.done and self.tracker.pending_for(reply.id) == 0:
                await self._report(reply, interrupted=False)

    async def _report(self, reply: _Speaking, *, interrupted: bool) -> None:
        if self._replies.pop(reply.id, None) is None:
            return
        heard = self.tracker.heard_text(reply.id)
        self.tracker.forget(reply.id)
        if self.listener is not None:
            await self.listener.reply_played(ReplyPlayback(
                reply.id, tuple(reply.said), heard, interrupted, reply.error))
