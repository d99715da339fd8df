"""Disk full: a call's recording stops, the call goes on, and the operator is told.

`AlarmedRecording` wraps the daemon's `CallRecording` (the store's). When a sink's write fails
(the store's recorder says `disk_full` once the file system refuses a write; any other write
failure is `write_failed`), the alarm is raised once for that call: a `recording.stopped` event
on the control socket, `reautod_recordings_stopped_total{reason}` and a warning in the log. The
failure is then passed on as a `StoreError`, so the pipeline's `GuardedSink` stops recording
that call (it never stops the call). A recorder that cannot even be opened (no space for its
directory) raises the same alarm, and the call is taken unrecorded.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from reautod.call_events import CallInfo
from reautod.call_recording import CallAudioSink, CallRecording, ConsentOutcome
from reautod.errors import ReautodError, StoreError
from reautod.topics import RecordingStopped, StopReason

log = logging.getLogger(__name__)

def stop_reason(err: ReautodError | OSError) -> StopReason:
    if isinstance(err, OSError):
        return "disk_full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "write_failed"
    return "disk_full" if err.code == "disk_full" else "write_failed"


def _detail(err: ReautodError | OSError) -> str:
    return err.message if isinstance(err, ReautodError) else f"{err.strerror or err}"


class AlarmedRecording:
    """A `CallRecording` whose sinks raise `alarm` once per call when they stop (see above)."""

    def __init__(self, inner: CallRecording, alarm: Callable[[RecordingStopped], None]) -> None:
        self.inner = inner
        self.alarm = alarm

    async def open(self, info: CallInfo, sample_rate: int) -> CallAudioSink | None:
        try:
            sink = await self.inner.open(info, sample_rate)
        except (ReautodError, OSError) as err:
            self.alarm(RecordingStopped(call_id=info.call_id, reason=stop_reason(err),
                                        detail=_detail(err)))
            raise StoreError(f"recording not started: {_detail(err)}",
                             code="disk_full" if stop_reason(err) == "disk_full" else None
                             ) from err
        return None if sink is None else _AlarmedSink(info.call_id, sink, self.alarm)


class _AlarmedSink:
    """One call's sink: the first failed write raises the alarm; every failure is a StoreError."""

    def __init__(self, call_id: str, inner: CallAudioSink,
                 alarm: Callable[[RecordingStopped], None]) -> None:
        self.call_id = call_id
        self.inner = inner
        self.alarm = alarm
        self.stopped: RecordingStopped | None = None

    def caller(self, pcm: bytes) -> None:
        self._write(self.inner.caller, pcm)

    def agent(self, pcm: bytes) -> None:
        self._write(self.inner.agent, pcm)

    def _write(self, write: Callable[[bytes], None], pcm: bytes) -> None:
        try:
            write(pcm)
        except (ReautodError, OSError) as err:
            if self.stopped is None:
                self.stopped = RecordingStopped(call_id=self.call_id, reason=stop_reason(err),
                                                detail=_detail(err))
                self.alarm(self.stopped)
            raise StoreError(f"recording stopped: {_detail(err)}",
                             code=self.stopped.reason if self.stopped.reason == "disk_full"
                             else None) from err

    async def close(self, outcome: ConsentOutcome) -> None:
        await self.inner.close(outcome)

    async def discard(self) -> None:
        await self.inner.discard()
