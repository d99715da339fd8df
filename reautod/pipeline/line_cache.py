"""Synthesized audio of the agent's scripted lines (re-prompt, goodbye, apology), kept per text.

Those lines are the same on every call, so the CallManager keeps one cache for all calls: the
first call that says a line streams it from TTS as usual and keeps the chunks; later calls play
them without touching the TTS engine (its scheduler is left to the replies that need it).
Only a line synthesized in full is kept: a barge-in or an engine failure leaves nothing behind.
"""

from __future__ import annotations

from collections import OrderedDict

from reautod.engines.base import AudioChunk

MAX_LINES = 32  # lines with the lead's name in them would otherwise grow without bound


class LineAudioCache:
    """Text -> whole synthesized audio, least recently used evicted past `max_lines`."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._lines: OrderedDict[str, tuple[AudioChunk, ...]] = OrderedDict()
        self._max = max_lines
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> tuple[AudioChunk, ...] | None:
        chunks = self._lines.get(text)
        if chunks is None:
            self.misses += 1
            return None
        self.hits += 1
        self._lines.move_to_end(text)
        return chunks

    def put(self, text: str, chunks: list[AudioChunk]) -> None:
        if not chunks:
            return
        self._lines[text] = tuple(chunks)
        self._lines.move_to_end(text)
        while len(self._lines) > self._max:
            self._lines.popitem(last=False)
