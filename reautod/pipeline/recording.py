"""The pipeline's side of call recording: a sink whose failure stops the recording, never the call.

The contract (`CallRecording`, `CallAudioSink`) lives in the leaf `reautod.call_recording`, which
the store implements; the pipeline never imports the store."""

from __future__ import annotations

import logging
from collections.abc import Callable

from reautod.call_recording import CallAudioSink
from reautod.errors import ReautodError

log = logging.getLogger(__name__)


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
