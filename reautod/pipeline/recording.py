"""The call's audio as it crossed the media socket, for whoever records calls (the daemon).

The pipeline knows only these Protocols: `CallRecording` opens one `CallAudioSink` per call, and
the serializer hands it every 16-bit mono PCM frame, caller audio as it arrived from Twilio and
agent audio as it was sent to be played. Sink methods run on the event loop once per media
message: they may only buffer (the daemon's sink writes files off the loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from reautod.call_events import CallInfo
from reautod.errors import ReautodError

log = logging.getLogger(__name__)


class CallAudioSink(Protocol):
    """One call's two audio directions; `caller` / `agent` must not block."""

    def caller(self, pcm: bytes) -> None: ...

    def agent(self, pcm: bytes) -> None: ...

    async def close(self) -> None:
        """The call is over: finish what was recorded."""
        ...


class CallRecording(Protocol):
    """Opens a sink for each call, or returns None when this call is not recorded."""

    async def open(self, info: CallInfo, sample_rate: int) -> CallAudioSink | None: ...


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
        except ReautodError as err:
            log.warning("call %s: recording stopped (%s: %s)", self._call_id, err.code,
                        err.message)
            self.recording = False

    async def close(self) -> None:
        """Always closes the inner sink (it owns a writer task), even after a failure."""
        self.recording = False
        try:
            await self._inner.close()
        except ReautodError as err:
            # what reached the disk stays as partial files: the next start finalises them
            log.warning("call %s: recording not finalised (%s: %s)", self._call_id, err.code,
                        err.message)
