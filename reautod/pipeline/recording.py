"""The pipeline's side of call recording: a sink whose failure stops the recording, never the call,
and the call's consent to it (announced in the opening, objections honoured at once).

The contract (`CallRecording`, `CallAudioSink`) lives in the leaf `reautod.call_recording`, which
the store implements; the pipeline never imports the store. The consent rules are
`reautod.security.consent` (pure state); `ConsentedRecording` applies them to one call:

- the sink is open before the pipeline starts, so the announcement is in the agent's track;
- the announcement is owed until the caller has heard it in full (its own line, confirmed by its
  playback mark): the driver says it at the end of the opening, or at the start of the next reply
  when the caller cut in before it was over;
- every final caller transcript is checked for an objection: the recording stops and what was
  recorded is deleted at once, and the next reply starts by saying so;
- at the end the files are kept with the consent on their rows, or discarded when consent was
  never given (all-party consent and the call ended before the announcement was heard).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from reautod.call_recording import CallAudioSink, ConsentOutcome
from reautod.config import RecordingConsentSettings
from reautod.conversation import Line
from reautod.errors import ReautodError
from reautod.security.consent import ConsentDecision, RecordingConsent

log = logging.getLogger(__name__)


def _describe(err: ReautodError | OSError) -> str:
    if isinstance(err, ReautodError):
        return f"{err.code}: {err.message}"
    return f"{type(err).__name__}: {err.strerror or err}"


class GuardedSink:
    """A sink whose failure stops the recording, never the call (logged once)."""

    def __init__(self, call_id: str, inner: CallAudioSink) -> None:
        self._call_id = call_id
        self._inner = inner
        self.recording = True

    def caller(self, pcm: bytes) -> None:
        self._write(self._inner.caller, pcm)

    def agent(self, pcm: bytes) -> None:
        self._write(self._inner.agent, pcm)

    def _write(self, write: Callable[[bytes], None], pcm: bytes) -> None:
        if not self.recording:
            return
        try:
            write(pcm)
        except (ReautodError, OSError) as err:  # OSError: a sink that let the disk's through
            log.warning("call %s: recording stopped (%s)", self._call_id, _describe(err))
            self.recording = False

    async def close(self, outcome: ConsentOutcome) -> None:
        """Always closes the inner sink (it owns a writer task), even after a failure."""
        self.recording = False
        try:
            await self._inner.close(outcome)
        except (ReautodError, OSError) as err:
            # what reached the disk stays as partial files: the next start finalises them
            log.warning("call %s: recording not finalised (%s)", self._call_id, _describe(err))

    async def discard(self) -> None:
        """Stop now and delete what was recorded; nothing more is written."""
        self.recording = False
        try:
            await self._inner.discard()
        except (ReautodError, OSError) as err:
            log.warning("call %s: recording not discarded (%s)", self._call_id, _describe(err))


class ConsentedRecording:
    """One recorded call's sink under its consent: what the driver asks and tells about it."""

    def __init__(self, sink: GuardedSink, settings: RecordingConsentSettings) -> None:
        self.sink = sink
        self.consent = RecordingConsent(settings)
        self._announcement = Line(settings.announcement, shared=True)
        self._stopped = Line(settings.stopped, shared=True)
        self._heard = False
        self._tell_stopped = False
        self._closed = False

    def owed(self) -> tuple[Line, ...]:
        """What the next reply must say first about the recording (nothing most of the time):
        the announcement until it was heard, once that the recording stopped on objection."""
        if self._tell_stopped:
            return (self._stopped,)
        if self._heard or self.consent.objected or self._closed:
            return ()
        return (self._announcement,)

    def played(self, heard: str, said: str, at: datetime) -> None:
        """A reply is over: `heard` is what the caller heard of it, `said` what was said."""
        if self._tell_stopped and self._stopped.text in said:
            self._tell_stopped = False
        if not self._heard and self._announcement.text in heard:
            self._heard = True
            self.consent.announced(at)

    async def caller_said(self, text: str, at: datetime) -> None:
        """A final caller transcript; an objection discards the recording now."""
        if self.consent.objected or self._closed:
            return
        if self.consent.caller_said(text, at) is ConsentDecision.DISCARD:
            self._tell_stopped = True
            await self.sink.discard()

    async def close(self) -> ConsentOutcome:
        """The call is over: keep or discard the files as the consent says (once)."""
        outcome = self.consent.outcome()
        if not self._closed:
            self._closed = True
            if self.consent.objected:
                self.sink.recording = False  # discarded already; nothing left to close
            else:
                await self.sink.close(outcome)
        return outcome
