"""Cutting the LLM's token stream into pieces for TTS: sentences, and an early first piece.

Sentence ends are pipecat's (`SimpleTextAggregator`: sentencex with a look at the text after the
punctuation, so "$29.99" and "Dr. Smith" stay whole). What pipecat lacks is ours: the first piece
of a reply is cut at the first clause boundary (or a word boundary once it is long), so audio
starts before the first sentence is complete, and a run-on "sentence" is cut at a word boundary.
Text from the LLM is outside input to the TTS engine: control characters are removed.
"""

from __future__ import annotations

import re
import unicodedata

from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

FIRST_CLAUSE_MIN_CHARS = 16  # "Sure, ..." is too short to be worth its own TTS request
FIRST_PIECE_MAX_CHARS = 60  # no punctuation yet: cut at a word boundary anyway
PIECE_MAX_CHARS = 220  # a run-on "sentence" is cut at a word boundary
_CLAUSE_END = re.compile(r"[,;:\u2014](\s)")


def clean(text: str) -> str:
    """Drop control and format characters; tabs and newlines become spaces."""
    return "".join(
        " " if ch in "\t\n\r" else ch
        for ch in text
        if ch in "\t\n\r" or unicodedata.category(ch)[0] != "C"
    )


def ends_sentence(piece: str) -> bool:
    """Whether a piece (as SentenceSplitter gives them) ends a sentence, not a clause or a cut."""
    return piece.rstrip().rstrip("\"')]\u201d\u2019").endswith((".", "!", "?"))


class SentenceSplitter:
    """Feed tokens with `push`; it returns the pieces ready for TTS. `flush` returns the rest."""

    def __init__(self) -> None:
        self._sentences = SimpleTextAggregator()
        # The aggregator's buffer as fed (its `text` strips the spaces a clause cut looks for).
        self._buffer = ""
        self._pieces = 0

    async def push(self, token: str) -> list[str]:
        out: list[str] = []
        await self._feed(clean(token), out)
        while (end := self._early_cut(self._buffer)) > 0:
            piece, rest = self._buffer[:end], self._buffer[end:]
            self._add(piece, out)
            await self._sentences.reset()
            self._buffer = ""
            await self._feed(rest, out)
        return out

    async def flush(self) -> str | None:
        rest = await self._sentences.flush()
        self._buffer = ""
        text = rest.text.strip() if rest is not None else ""
        return text or None

    async def _feed(self, text: str, out: list[str]) -> None:
        self._buffer += text
        async for sentence in self._sentences.aggregate(text):
            # The sentence is the front of the buffer, less the spaces around it.
            buffer = self._buffer.lstrip(" ")
            if buffer.startswith(sentence.text):
                self._buffer = buffer[len(sentence.text):]
            else:  # not expected; the aggregator's own view is the truth
                self._buffer = self._sentences.text.text
            self._add(sentence.text, out)

    def _add(self, piece: str, out: list[str]) -> None:
        if piece := piece.strip():
            out.append(piece)
            self._pieces += 1

    def _early_cut(self, text: str) -> int:
        limit = FIRST_PIECE_MAX_CHARS if self._pieces == 0 else PIECE_MAX_CHARS
        if self._pieces == 0:
            for match in _CLAUSE_END.finditer(text):
                if match.start() + 1 >= FIRST_CLAUSE_MIN_CHARS:
                    return match.start() + 1
        if len(text) >= limit:
            space = text.rfind(" ", 0, limit)
            return space if space > 0 else limit
        return 0
