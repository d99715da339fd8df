"""Playback truth: which agent audio the caller actually heard, from Twilio's mark echoes.

After each piece of a reply the pipeline sends a playback mark; the media echoes it once the audio
before it has played (Twilio: a `mark` message). After a `clear`, Twilio echoes the marks still
pending too, so an echo that arrives after a clear means "discarded", not "played".
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field


@dataclass
class _Mark:
    name: str
    reply_id: int
    text: str
    sent_at: float


@dataclass
class PlaybackTracker:
    """Marks sent and echoed for one call; pure state, no I/O."""

    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[str, _Mark] = field(default_factory=dict)
    _discarded: set[str] = field(default_factory=set)
    _heard: dict[int, list[str]] = field(default_factory=dict)
    last_played_at: float | None = None  # monotonic time of the last confirmed echo
    unknown_echoes: int = 0

    def new_mark(self, reply_id: int, text: str) -> str:
        """Register a chunk about to be followed by a mark; returns the mark's name."""
        name = f"r{reply_id}-{next(self._counter)}"
        self._pending[name] = _Mark(name, reply_id, text, time.monotonic())
        return name

    def echoed(self, name: str) -> bool:
        """Record an echo; True when it confirms played audio (not a discard or a stranger)."""
        mark = self._pending.pop(name, None)
        if mark is None:
            if name in self._discarded:
                self._discarded.discard(name)
            else:
                self.unknown_echoes += 1
            return False
        self._heard.setdefault(mark.reply_id, []).append(mark.text)
        self.last_played_at = time.monotonic()
        return True

    def clear(self) -> None:
        """A `clear` was sent: every pending mark will come back as a discard."""
        self._discarded.update(self._pending)
        self._pending.clear()

    def heard_text(self, reply_id: int) -> str:
        return " ".join(t for t in self._heard.get(reply_id, []) if t).strip()

    def forget(self, reply_id: int) -> None:
        """Reply `reply_id` is over and reported: drop what was heard of it."""
        self._heard.pop(reply_id, None)

    def pending_for(self, reply_id: int) -> int:
        return sum(1 for m in self._pending.values() if m.reply_id == reply_id)

    @property
    def playing(self) -> bool:
        """Audio was sent whose playback Twilio has not confirmed yet."""
        return bool(self._pending)
