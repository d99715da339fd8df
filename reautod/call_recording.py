"""The recording contract: how the call pipeline hands a call's audio to whoever records calls.

A leaf both sides import: the pipeline calls these Protocols, the store implements them
(`reautod.store.call_audio`), and neither imports the other. `CallRecording` opens one
`CallAudioSink` per call; the pipeline hands the sink every 16-bit mono PCM frame, caller audio
as it arrived and agent audio as it was sent to be played. Sink methods run on the event loop
once per media message: they may only buffer (the daemon's sink writes files off the loop).

What becomes of a recording is the call's consent (`reautod.security.consent`): the pipeline
closes the sink with a `ConsentOutcome` (kept with the consent stored on its rows, or discarded),
or discards it at once when the caller objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reautod.call_events import CallInfo


@dataclass(frozen=True)
class ConsentOutcome:
    """What to do with a call's recording when it is over: `keep` it (with `consent_recorded`
    and `detail` stored on its rows) or discard it."""

    keep: bool
    consent_recorded: bool
    detail: str


class CallAudioSink(Protocol):
    """One call's two audio directions; `caller` / `agent` must not block. A sink that cannot
    go on raises ReautodError: the pipeline stops recording that call, never the call."""

    def caller(self, pcm: bytes) -> None: ...

    def agent(self, pcm: bytes) -> None: ...

    async def close(self, outcome: ConsentOutcome) -> None:
        """The call is over: finish what was recorded (kept as `outcome` says, else discarded)."""
        ...

    async def discard(self) -> None:
        """Stop recording now and delete what was recorded (the caller objected); no rows."""
        ...


class CallRecording(Protocol):
    """Opens a sink for each call, or returns None when this call is not recorded."""

    async def open(self, info: CallInfo, sample_rate: int) -> CallAudioSink | None: ...
