"""Greetings synthesized before their call connects, kept by call id until the stream starts.

When reautod places a call it already knows what the agent will open with, so the TTS work can
run while the phone rings instead of while the caller waits. The CallManager holds one
`PreparedGreetings`; the session takes its call's audio when Twilio's `start` arrives and uses it
only when the text is the one it would speak (else it synthesizes then, as without a store).

A dialed call that never connects (no answer, busy, a machine hung up on) must leave nothing
behind: its entry is dropped when the call ends without a stream, and every entry expires
anyway; the store is bounded, oldest evicted. Dropping an entry cancels its synthesis task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass

from reautod.engines.base import AudioChunk, TextToSpeech
from reautod.engines.scheduler import ahead_of_need
from reautod.pipeline.engine_calls import aclose, engine_error

log = logging.getLogger(__name__)

GreetingTask = asyncio.Task[list[AudioChunk]]


async def synthesize_all(tts: TextToSpeech, text: str, *, call_id: str, timeout_s: float
                         ) -> list[AudioChunk]:
    """The whole of `text` as audio chunks (used to have the greeting ready before it is due)."""
    chunks: list[AudioChunk] = []
    stream = tts.synthesize(text, call_id=call_id)
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in stream:
                chunks.append(chunk)
    except Exception as err:
        raise engine_error(err, "tts") from err
    finally:
        await aclose(stream)
    return chunks


def _retrieve(task: GreetingTask) -> None:
    # A greeting that failed while nobody waited for it is not an "exception never retrieved";
    # whoever takes the task still sees the exception when it awaits it.
    if not task.cancelled():
        task.exception()


@dataclass
class _Prepared:
    text: str
    task: GreetingTask
    expiry: asyncio.TimerHandle


class PreparedGreetings:
    """Call id -> the greeting's synthesis task, bounded (`max_entries`) and expiring."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._entries: OrderedDict[str, _Prepared] = OrderedDict()
        self._cancelled: set[GreetingTask] = set()  # awaited by close()
        self._max = max_entries
        # used, mismatched, failed, dropped, expired, evicted: what became of each entry
        self.outcomes: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._entries

    def prepare(self, call_id: str, text: str, tts: TextToSpeech, *, timeout_s: float,
                expires_in_s: float) -> None:
        """Start synthesizing call `call_id`'s greeting now; kept until taken, dropped or expired."""
        self._discard(call_id, "dropped")  # a second prepare for one call replaces the first
        loop = asyncio.get_running_loop()
        with ahead_of_need():  # the phone is still ringing; the task takes this context
            task = loop.create_task(synthesize_all(tts, text, call_id=call_id,
                                                   timeout_s=timeout_s),
                                    name=f"greeting-{call_id}")
        task.add_done_callback(_retrieve)
        expiry = loop.call_later(expires_in_s, self._expire, call_id, task)
        self._entries[call_id] = _Prepared(text, task, expiry)
        while len(self._entries) > self._max:
            self._discard(next(iter(self._entries)), "evicted")

    def take(self, call_id: str, text: str) -> GreetingTask | None:
        """The task synthesizing `text` for `call_id`, now the caller's to await or cancel; None
        when nothing usable was prepared (absent, another text, failed)."""
        entry = self._entries.pop(call_id, None)
        if entry is None:
            return None
        entry.expiry.cancel()
        task = entry.task
        if entry.text != text:
            self.outcomes["mismatched"] += 1
            self._cancel(task)
            return None
        if task.done() and (task.cancelled() or task.exception() is not None):
            self.outcomes["failed"] += 1  # the caller synthesizes it again, maybe with luck
            return None
        self.outcomes["used"] += 1
        return task

    def text_of(self, call_id: str) -> str | None:
        """The text prepared for `call_id`, if any (an opening decided ahead by its dialogue)."""
        entry = self._entries.get(call_id)
        return entry.text if entry is not None else None

    def drop(self, call_id: str) -> bool:
        """Forget call `call_id`'s greeting (its call ended without a stream); True if held."""
        return self._discard(call_id, "dropped")

    async def close(self) -> None:
        """Cancel every prepared greeting and wait for the tasks to finish."""
        for call_id in list(self._entries):
            self._discard(call_id, "dropped")
        if self._cancelled:
            await asyncio.gather(*self._cancelled, return_exceptions=True)

    def _expire(self, call_id: str, task: GreetingTask) -> None:
        entry = self._entries.get(call_id)
        if entry is not None and entry.task is task:
            log.info("call %s: prepared greeting expired unused", call_id)
            self._discard(call_id, "expired")

    def _discard(self, call_id: str, outcome: str) -> bool:
        entry = self._entries.pop(call_id, None)
        if entry is None:
            return False
        entry.expiry.cancel()
        self._cancel(entry.task)
        self.outcomes[outcome] += 1
        return True

    def _cancel(self, task: GreetingTask) -> None:
        if task.done():
            return
        task.cancel()
        self._cancelled.add(task)
        task.add_done_callback(self._cancelled.discard)
