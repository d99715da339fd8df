"""Consent to local call recording: the policy, the per-call state, and what becomes of the file.

The law differs by state (shared/compliance.md, Recording consent): all-party consent states
need every party to agree; California's reaches calls into California from anywhere. So the
default is all-party everywhere: the call announces the recording, the announcement is kept in
the recording (Washington requires it), continuing after it is the consent, and an objection at
any time stops the recording and discards what was recorded.

How the pipeline uses it (one `RecordingConsent` per recorded call, no I/O in it):
  1. start the recorder *before* the announcement plays, so the announcement is in the file;
  2. `announced(at)` once the announcement was heard in full (its playback mark);
  3. `caller_said(text, at)` with every final caller transcript (and `caller_objected(at, how)`
     for an objection detected another way, a key press for instance): DISCARD means
     `await recorder.discard()` now, and no recording for the rest of the call;
  4. at the end, `CallAudioSink.close(consent.outcome())` keeps the files with the consent stored
     on their rows (`recordings.consent_recorded`, `consent_detail`), or discards them when
     consent was never given (the call ended before the announcement finished, under all-party
     consent).
`reautod.pipeline.recording.ConsentedRecording` does all four for a call.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from reautod.call_recording import ConsentOutcome
from reautod.config import RecordingConsentSettings

# An objection to the recording: not "don't mind being recorded", not "record my number".
_OBJECTION = re.compile(
    r"\b(?:"
    r"(?:do not|don't|dont|please don't|no)\s+(?:\w+\s+){0,2}record(?:ing)?\b"
    r"|(?:can|could|would|will)\s+you\s+not\s+record"
    r"|stop\s+(?:the\s+|this\s+)?record(?:ing)?"
    r"|turn\s+(?:off\s+the\s+record(?:ing|er)|the\s+record(?:ing|er)\s+off)"
    r"|(?:not|don't|dont|do not)\s+(?:\w+\s+){0,2}(?:be(?:ing)?\s+)?recorded"
    r"|(?:do not|don't|dont|not|never)\s+consent"
    r"|not\s+consenting"
    r"|(?:i\s+)?object\s+to\s+(?:the\s+|this\s+|being\s+)?record"
    r")"
)
_NOT_AN_OBJECTION = re.compile(r"\b(?:don't|dont|do not|wouldn't|would not)\s+mind\b")


def detect_objection(text: str) -> bool:
    """Whether a caller's words object to the recording."""
    said = re.sub(r"[^\w\s']", " ", text.lower().replace("’", "'"))
    said = re.sub(r"\s+", " ", said)
    return bool(_OBJECTION.search(said)) and not _NOT_AN_OBJECTION.search(said)


class ConsentDecision(StrEnum):
    RECORD = "record"  # keep recording
    DISCARD = "discard"  # stop now and delete what was recorded


class _State(StrEnum):
    PENDING = "pending"
    ANNOUNCED = "announced"
    OBJECTED = "objected"


class RecordingConsent:
    """One call's consent to recording (pure state)."""

    def __init__(self, settings: RecordingConsentSettings) -> None:
        self.mode = settings.mode
        self._state = _State.PENDING
        self._announced_at: datetime | None = None
        self._objection: str | None = None

    @property
    def objected(self) -> bool:
        return self._state is _State.OBJECTED

    def announced(self, at: datetime) -> None:
        if self._state is _State.PENDING:
            self._state = _State.ANNOUNCED
            self._announced_at = at

    def caller_said(self, text: str, at: datetime) -> ConsentDecision:
        if self.objected:
            return ConsentDecision.DISCARD
        if detect_objection(text):
            return self.caller_objected(at, "spoken objection")
        return ConsentDecision.RECORD

    def caller_objected(self, at: datetime, how: str) -> ConsentDecision:
        if not self.objected:
            self._state = _State.OBJECTED
            self._objection = f"{how} at {at.isoformat(timespec='seconds')}"
        return ConsentDecision.DISCARD

    def outcome(self) -> ConsentOutcome:
        """What to do with the recording when the call is over."""
        if self.objected:
            return ConsentOutcome(False, False, f"caller objected: {self._objection}")
        if self._announced_at is not None:
            return ConsentOutcome(True, True, f"{self.mode}: recording announced at "
                                  f"{self._announced_at.isoformat(timespec='seconds')}, caller "
                                  "continued without objecting")
        if self.mode == "one_party":
            return ConsentOutcome(True, True, "one_party: the business's consent; not announced")
        return ConsentOutcome(False, False, "all_party: the call ended before the announcement "
                                            "was heard")
