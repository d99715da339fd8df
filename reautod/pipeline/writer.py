"""Reply generation: the LLM writes its parts of replies, cut into pieces speech can start on.

For each GenerateFrame the shared LLM streams a reply from the conversation's messages; each
piece (the first clause, then whole sentences: pipeline.sentences) goes on to speech as soon as
it is complete, so the first audio plays while the rest is being written. Everything else passes
through in order: a reply's approved lines wait behind its LLM part, as they must.

It runs in pipecat's direct mode: no queue or task of its own, a frame is handled in the task
that pushed it. A GenerateFrame is written inside the driver's reply task, which sends the
reply's next part only once this one is written (the order speech needs) and whose cancellation
on an interruption cancels the LLM request (closing the stream cancels the engine's work). That
saves the two queue hops per reply a queued processor costs on the way to the first audio.
A reply whose speech failed is abandoned (SpeechFailedFrame from speech). An LLM failure, or a
reply with no words in it, ends the reply in its fallback line (ReplyFailedFrame, in order after
the pieces already written). A part limited to N sentences (`Generate.sentences`: the agent's
acknowledgement before its approved question) closes the request after the Nth, and drops a
last sentence the model left unfinished. A part naming a model (`Generate.model`: a playbook
stage's) is written by that model (reautod.engines.switch).
"""

from __future__ import annotations

import asyncio
import logging
import time

from pipecat.frames.frames import Frame, InterruptionFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from reautod.conversation import Line
from reautod.engines.base import LanguageModel
from reautod.pipeline.engine_calls import aclose, engine_error
from reautod.pipeline.frames import (
    GenerateFrame,
    ReplyFailedFrame,
    ReplyStartFrame,
    SayFrame,
    SpeechFailedFrame,
)
from reautod.pipeline.sentences import SentenceSplitter, ends_sentence

log = logging.getLogger(__name__)


class ReplyWriter(FrameProcessor):
    """Streams the LLM for each GenerateFrame of a live reply into SayFrames."""

    def __init__(self, *, call_id: str, llm: LanguageModel, max_tokens: int,
                 timeout_s: float) -> None:
        super().__init__(name=f"writer-{call_id}", enable_direct_mode=True)
        self._call_id = call_id
        self._llm = llm
        self._max_tokens = max_tokens
        self._timeout_s = timeout_s
        self._live: set[int] = set()  # replies started and not cut since
        self._writing: tuple[int, asyncio.Task[str | None]] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, ReplyStartFrame):
            self._live.add(frame.reply_id)
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            self._live.clear()  # the driver cancelled the reply being written, if any
            await self.push_frame(frame, direction)
        elif isinstance(frame, SpeechFailedFrame):
            self._live.discard(frame.reply_id)
            if self._writing is not None and self._writing[0] == frame.reply_id:
                self._writing[1].cancel()
        elif isinstance(frame, GenerateFrame):
            if frame.reply_id in self._live:
                await self._write(frame)
        else:
            await self.push_frame(frame, direction)

    async def _write(self, frame: GenerateFrame) -> None:
        # A task of its own, so that speech failing can stop it without cancelling the driver's
        # reply task it runs in (and pipecat's task manager would swallow its exception: it
        # returns the failure code instead).
        task = self.create_task(self._stream(frame), name=f"llm-{self._call_id}")
        self._writing = (frame.reply_id, task)
        try:
            await asyncio.wait({task})
        finally:
            self._writing = None
            if not task.done():  # the reply task was cancelled: an interruption
                await self.cancel_task(task)
        if task.cancelled():
            return  # abandoned: speech failed and already apologised
        code = task.result()
        if code is not None:
            await self.push_frame(ReplyFailedFrame(reply_id=frame.reply_id, code=code))

    async def _stream(self, frame: GenerateFrame) -> str | None:
        """Stream one LLM reply into SayFrames; the failure code, or None."""
        stream = self._llm.stream_chat(list(frame.messages), call_id=self._call_id,
                                       max_tokens=frame.max_tokens or self._max_tokens,
                                       model=frame.model)
        splitter = SentenceSplitter()
        said = 0
        left = frame.sentences  # sentences it may still say; None: all it writes
        try:
            async with asyncio.timeout(self._timeout_s):
                async for chunk in stream:
                    if frame.timing.first_token_at is None:
                        frame.timing.first_token_at = time.monotonic()
                    for piece in await splitter.push(chunk.text):
                        await self._say(frame.reply_id, piece)
                        said += 1
                        if left is not None and ends_sentence(piece):
                            left -= 1
                            if left <= 0:
                                return None  # enough said: closing the stream stops the model
            rest = await splitter.flush()
            if rest is not None and (left is None or ends_sentence(rest)):
                await self._say(frame.reply_id, rest)
                said += 1
        except Exception as err:
            return engine_error(err, "llm").code
        finally:
            await aclose(stream)
        return None if said else "llm_empty"

    async def _say(self, reply_id: int, text: str) -> None:
        await self.push_frame(SayFrame(reply_id=reply_id, line=Line(text)))
