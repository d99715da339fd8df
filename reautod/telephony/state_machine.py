"""The Twilio call state machine: a pure transition function and a per-call timeline.

Twilio's status callbacks arrive late, twice, out of order, or not at all (a lost "answered"
callback followed by "completed" is normal). The timeline therefore orders events by Twilio's
SequenceNumber, never moves a call backwards, lets a call skip states it never heard about, and
logs and ignores what cannot happen. Nothing here raises on bad input from Twilio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from reautod.store.enums import CallStatus

log = logging.getLogger(__name__)

# One CallStatus (reautod.store.enums: the store's spelling, and the rank that orders the
# lifecycle) for the timeline and the store; Twilio's spelling is met only at the edges.
TERMINAL = frozenset(s for s in CallStatus if s.terminal)
# Statuses that only make sense for a call that was never answered.
_UNANSWERED_ENDS = frozenset({CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.CANCELED})
MAX_IGNORED = 100


def parse_status(value: str | None) -> CallStatus | None:
    """The CallStatus for Twilio's string (`in-progress`), or None for a missing or unknown one."""
    if value is None:
        return None
    try:
        return CallStatus(value.strip().lower().replace("-", "_"))
    except ValueError:
        return None


def twilio_spelling(status: CallStatus) -> str:
    """The status as Twilio writes it (`in-progress`, `no-answer`)."""
    return status.value.replace("_", "-")


def can_transition(current: CallStatus, new: CallStatus) -> bool:
    """Whether a call in `current` may move to `new` (forward only; skipped states allowed)."""
    if current.terminal or new == current:
        return False
    if new.terminal:
        # Busy, no-answer and canceled end a call before it is answered; completed and failed
        # can end it at any point (completed straight from ringing means we missed "answered").
        return not (new in _UNANSWERED_ENDS and current == CallStatus.IN_PROGRESS)
    return new.rank > current.rank


def transition(current: CallStatus, new: CallStatus) -> CallStatus:
    """The status after `new` is reported for a call in `current`: `new`, or `current` if impossible."""
    return new if can_transition(current, new) else current


class Applied(StrEnum):
    """What applying one status event did."""

    APPLIED = "applied"
    LATE = "late"  # an earlier step that arrived after a later one: kept in the timeline only
    DUPLICATE = "duplicate"
    IMPOSSIBLE = "impossible"
    UNKNOWN_STATUS = "unknown_status"


@dataclass(frozen=True)
class StatusEvent:
    """One reported status: from a status callback (with SequenceNumber) or from us (without)."""

    status: str
    sequence_number: int | None = None
    at: datetime | None = None
    source: str = "twilio"


@dataclass(frozen=True)
class TimelineEntry:
    status: CallStatus
    sequence_number: int | None
    at: datetime | None
    source: str


@dataclass
class CallTimeline:
    """The status history of one call, as the store persists it; `status` never goes backwards."""

    status: CallStatus = CallStatus.QUEUED
    entries: list[TimelineEntry] = field(default_factory=list)
    ignored: list[tuple[StatusEvent, Applied]] = field(default_factory=list)

    def apply(self, event: StatusEvent) -> Applied:
        """Fold one event in; never raises, whatever Twilio sent."""
        new = parse_status(event.status)
        if new is None:
            log.warning("ignoring unknown call status %r", event.status)
            return self._ignore(event, Applied.UNKNOWN_STATUS)
        if self._seen(new, event.sequence_number):
            return self._ignore(event, Applied.DUPLICATE)
        entry = TimelineEntry(new, event.sequence_number, event.at, event.source)
        if can_transition(self.status, new):
            if self._older_than_known(event.sequence_number):
                # A forward step numbered before one we already applied: Twilio says it happened
                # earlier, so the later state we hold still stands; keep it as history only.
                return self._insert_late(entry, new)
            self.status = new
            self._insert(entry)
            return Applied.APPLIED
        if not new.terminal and new.rank < self.status.rank:
            return self._insert_late(entry, new)
        log.info("ignoring impossible transition %s -> %s (seq %s)",
                 self.status, new, event.sequence_number)
        return self._ignore(event, Applied.IMPOSSIBLE)

    @property
    def last_sequence_number(self) -> int | None:
        numbers = [e.sequence_number for e in self.entries if e.sequence_number is not None]
        return max(numbers) if numbers else None

    def _seen(self, status: CallStatus, sequence_number: int | None) -> bool:
        for entry in self.entries:
            if sequence_number is not None and entry.sequence_number == sequence_number:
                return True
            if entry.status == status:
                return True
        return False

    def _older_than_known(self, sequence_number: int | None) -> bool:
        last = self.last_sequence_number
        return sequence_number is not None and last is not None and sequence_number < last

    def _insert_late(self, entry: TimelineEntry, new: CallStatus) -> Applied:
        log.debug("late status %s (seq %s) kept as history; call is %s",
                  new, entry.sequence_number, self.status)
        self._insert(entry)
        return Applied.LATE

    def _insert(self, entry: TimelineEntry) -> None:
        # Order by sequence number where known; our own events (no number) keep arrival order.
        if entry.sequence_number is None:
            self.entries.append(entry)
            return
        for index, existing in enumerate(self.entries):
            if existing.sequence_number is not None and existing.sequence_number > entry.sequence_number:
                self.entries.insert(index, entry)
                return
        self.entries.append(entry)

    def _ignore(self, event: StatusEvent, outcome: Applied) -> Applied:
        # Bounded: a misbehaving sender must not grow a call's memory without limit.
        if len(self.ignored) < MAX_IGNORED:
            self.ignored.append((event, outcome))
        return outcome
