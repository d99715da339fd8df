"""The phone's playback of agent audio: a buffer drained at 8000 bytes/s, with marks and clears.

Pure state, no I/O: the simulator feeds it what the agent sends and calls `play_frame` once per
20 ms tick; it says which marks are due for an echo. Every byte the agent sends gets a position
on one stream; the cursor is how far playback has got (cleared bytes are skipped over), and a
mark is due once the cursor reaches the position it was received at.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from reautod.telephony.audio import TELEPHONY_RATE, ULAW_SILENCE
from reautod.telephony.sim_result import MarkRecord, MediaArrival

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
SILENCE_FRAME = bytes([ULAW_SILENCE]) * FRAME_BYTES
#: A gap in the agent's audio shorter than this does not end its talk spurt (streaming TTS and
#: servers that pace audio to real time leave the buffer briefly empty between chunks).
SPURT_HANGOVER_S = 0.2


@dataclass
class PendingMark:
    name: str
    position: int
    received_at: float


class Playback:
    """Agent audio as the phone plays it. Times are call-clock seconds."""

    def __init__(self, *, record: bool = True) -> None:
        self._record = record
        self._pending = bytearray()
        self._cursor = 0
        self._marks: deque[PendingMark] = deque()
        self._spurt_started_at: float | None = None
        self.playback_ended_at: float | None = None  # when the buffer last ran dry
        self.last_media_at: float | None = None
        self.media: list[MediaArrival] = []
        self.mark_records: list[MarkRecord] = []
        self.clears: list[float] = []
        self.ran_dry: list[float] = []  # when agent audio stopped reaching the caller (dry, clear)
        self.heard = bytearray()  # what the caller heard, one frame per tick (when recording)
        self.received = bytearray()  # every agent byte in arrival order (when recording)
        self.bytes_played = 0
        self.bytes_cleared = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet played."""
        return len(self._pending)

    @property
    def bytes_received(self) -> int:
        return self._cursor + len(self._pending)

    def speaking_since(self, now: float) -> float | None:
        """Start of the agent's current talk spurt, or None when it is not speaking."""
        if self._spurt_started_at is None:
            return None
        ended = self.playback_ended_at
        if not self._pending and ended is not None and now - ended > SPURT_HANGOVER_S:
            return None
        return self._spurt_started_at

    def add_media(self, audio: bytes, now: float) -> None:
        if self.speaking_since(now) is None:
            self._spurt_started_at = now
        self._pending += audio
        self.last_media_at = now
        self.media.append(MediaArrival(now, len(audio)))
        if self._record:
            self.received += audio

    def add_mark(self, name: str, now: float) -> None:
        self._marks.append(PendingMark(name, self.bytes_received, now))

    def due_marks(self) -> list[PendingMark]:
        """Pop the marks whose audio has all been played."""
        due: list[PendingMark] = []
        while self._marks and self._marks[0].position <= self._cursor:
            due.append(self._marks.popleft())
        return due

    def play_frame(self, now: float) -> None:
        """Play the next 20 ms (silence if nothing is buffered)."""
        chunk = self._pending[:FRAME_BYTES]
        if chunk:
            del self._pending[:FRAME_BYTES]
            self._cursor += len(chunk)
            self.bytes_played += len(chunk)
            if not self._pending:
                self.playback_ended_at = now + len(chunk) / TELEPHONY_RATE
                self.ran_dry.append(self.playback_ended_at)
        if self._record:
            self.heard += chunk
            if len(chunk) < FRAME_BYTES:
                self.heard += SILENCE_FRAME[len(chunk):]

    def clear(self, now: float) -> tuple[list[PendingMark], list[PendingMark]]:
        """Drop unplayed audio. Returns (marks already played, marks discarded): echo both now."""
        self.clears.append(now)
        played = self.due_marks()
        discarded = list(self._marks)
        self._marks.clear()
        if self._pending:
            self.bytes_cleared += len(self._pending)
            self._cursor += len(self._pending)
            self._pending.clear()
            self.playback_ended_at = now
            self.ran_dry.append(now)
        self._spurt_started_at = None
        return played, discarded

    def echoed(self, marks: list[PendingMark], now: float, *, played: bool) -> None:
        for mark in marks:
            self.mark_records.append(MarkRecord(mark.name, mark.received_at, now, played))

    def unechoed(self) -> list[MarkRecord]:
        """Marks whose audio had not played when the call ended."""
        return [MarkRecord(m.name, m.received_at, None, False) for m in self._marks]
