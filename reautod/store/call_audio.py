"""Recording live calls: the pipeline's `CallRecording` made of `CallRecorder` (two WAV files per
call under the state directory) and the write-behind queue (one recordings row per file).

The caller track is continuous (Twilio streams the line all the time); the agent's audio comes
in talk spurts, so the agent track is padded with silence to the caller track's length before
each spurt: both files then share one timeline and play side by side.

The files are kept only as the call's consent says (`ConsentOutcome`, stored on each row);
otherwise, and at once when the caller objects, they are removed and no row is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from reautod.call_events import CallInfo
from reautod.call_recording import CallAudioSink, ConsentOutcome
from reautod.security.keys import KeyRing
from reautod.store.call_observer import call_uuid
from reautod.store.enums import RecordingDirection
from reautod.store.recordings import SAMPLE_WIDTH, CallRecorder
from reautod.store.records import RecordingFinalized
from reautod.store.writebehind import WriteBehind

log = logging.getLogger(__name__)

ALIGN_SLACK_S = 0.1  # the agent track lagging less than this is jitter, not a pause


class RecorderSink:
    """CallAudioSink over one CallRecorder; `close` hands the finalised files' rows to `submit`
    (the write-behind queue's: True when queued)."""

    def __init__(self, recorder: CallRecorder,
                 submit: Callable[[RecordingFinalized], bool]) -> None:
        self._recorder = recorder
        self._submit = submit
        self._slack = int(recorder.sample_rate * ALIGN_SLACK_S)
        self._caller_samples = 0
        self._agent_samples = 0

    def caller(self, pcm: bytes) -> None:
        self._recorder.write(RecordingDirection.INBOUND, pcm)
        self._caller_samples += len(pcm) // SAMPLE_WIDTH

    def agent(self, pcm: bytes) -> None:
        gap = self._caller_samples - self._agent_samples
        if gap > self._slack:
            self._recorder.write(RecordingDirection.OUTBOUND, bytes(gap * SAMPLE_WIDTH))
            self._agent_samples += gap
        self._recorder.write(RecordingDirection.OUTBOUND, pcm)
        self._agent_samples += len(pcm) // SAMPLE_WIDTH

    async def discard(self) -> None:
        await self._recorder.discard()

    async def close(self, outcome: ConsentOutcome) -> None:
        if not outcome.keep:
            await self._recorder.discard()
            return
        self._recorder.set_consent(outcome.consent_recorded, outcome.detail)
        for record in await self._recorder.close():
            if not self._submit(record):
                # the file is final on disk; only its row is missing (the queue counted it)
                log.warning("recording %s: row not queued (write-behind queue full)",
                            record.path)
        if self._recorder.dropped_bytes:
            log.warning("recording of call %s: %d bytes dropped (disk too slow)",
                        self._recorder.call_id, self._recorder.dropped_bytes)


class StoreCallRecording:
    """CallRecording: every call's two directions as WAV files, rows via the write-behind queue;
    sealed (encrypted as written) with the key ring when there is one."""

    def __init__(self, recordings_dir: Path, writer: WriteBehind, *,
                 retention: timedelta, keys: KeyRing | None = None) -> None:
        self._dir = recordings_dir
        self._writer = writer
        self._retention = retention
        self._keys = keys

    async def open(self, info: CallInfo, sample_rate: int) -> CallAudioSink:
        recorder = CallRecorder(
            self._dir, call_uuid(info.call_id), sample_rate=sample_rate,
            retention=self._retention, keys=self._keys,
        )
        await recorder.start()
        return RecorderSink(recorder, self._writer.submit)
