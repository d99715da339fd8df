"""Cutting the LLM's token stream into pieces for TTS: sentences, and an early first piece.

The first piece of a reply is cut at the first clause boundary (or word boundary once it is
long), so audio starts before the first sentence is complete; later pieces are whole sentences.
Text from the LLM is outside input to the TTS engine: control characters are removed.
"""

from __future__ import annotations

import re
import unicodedata

from pipecat.utils.string import match_endofsentence

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


class SentenceSplitter:
    """Feed tokens with `push`; it returns the pieces ready for TTS. `flush` returns the rest."""

    def __init__(self) -> None:
        self._text = ""
        self._pieces = 0

    def push(self, token: str) -> list[str]:
        self._text += clean(token)
        out: list[str] = []
        while (piece := self._next_piece()) is not None:
            out.append(piece)
        return out

    def flush(self) -> str | None:
        rest, self._text = self._text.strip(), ""
        return rest or None

    def _next_piece(self) -> str | None:
        text = self._text
        end = match_endofsentence(text)
        if end <= 0:
            end = self._early_cut(text)
        if end <= 0:
            return None
        piece, self._text = text[:end].strip(), text[end:]
        if not piece:
            return None
        self._pieces += 1
        return piece

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
