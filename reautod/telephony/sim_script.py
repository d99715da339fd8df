"""Script steps for the Twilio simulator: what the simulated caller does, in order.

All durations are on the call clock (the phone's timeline, see `reautod.telephony.simulator`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy.typing as npt

from reautod.errors import ValidationError
from reautod.telephony.audio import TELEPHONY_RATE, float_to_ulaw, read_audio, resample

DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class Utterance:
    """Caller speech as 8 kHz mu-law bytes, encoded once and shareable by any number of calls.

    Build one with `from_file` (blocking: use `asyncio.to_thread` on a loop) or `from_samples`.
    """

    ulaw: bytes
    label: str = ""

    def __post_init__(self) -> None:
        if not self.ulaw:
            raise ValidationError("an utterance needs at least one sample of audio")

    @classmethod
    def from_samples(
        cls, samples: npt.ArrayLike, sample_rate: int, *, label: str = ""
    ) -> Utterance:
        """Float mono samples in [-1, 1] at any rate, resampled to 8 kHz and mu-law encoded."""
        return cls(float_to_ulaw(resample(samples, sample_rate, TELEPHONY_RATE)), label)

    @classmethod
    def from_file(cls, path: str | Path, *, label: str | None = None) -> Utterance:
        """Any audio file soundfile reads (WAV of any rate and encoding, FLAC, ...)."""
        clip = read_audio(path, sample_rate=TELEPHONY_RATE)
        return cls(float_to_ulaw(clip.samples), Path(path).stem if label is None else label)

    @property
    def duration_s(self) -> float:
        return len(self.ulaw) / TELEPHONY_RATE


@dataclass(frozen=True)
class Pause:
    """Stream line silence (mu-law 0xFF) for `seconds`: that many 20 ms frames, even if late."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValidationError(f"a pause cannot be negative: {self.seconds}")


@dataclass(frozen=True)
class WaitForAgent:
    """Wait until the agent has finished speaking.

    Done when the playback buffer is empty and `quiet_ms` have passed since the later of its last
    media frame and the end of its playback. With `require_speech` (the default) the agent must
    also have sent audio during this step (or still be playing when it starts); otherwise plain
    quiet is enough. Gives up after `timeout_s`, which is recorded in `CallResult.timeouts`.
    """

    quiet_ms: int = 600
    timeout_s: float = 20.0
    require_speech: bool = True

    def __post_init__(self) -> None:
        if self.quiet_ms < 0 or self.timeout_s <= 0:
            raise ValidationError("quiet_ms must be >= 0 and timeout_s > 0")


@dataclass(frozen=True)
class BargeIn:
    """Start `utterance` `after_s` seconds after the agent starts speaking.

    If the agent is already speaking when the step starts, that talk spurt counts. Gives up
    (without speaking) after `timeout_s`, recorded in `CallResult.timeouts`.
    """

    utterance: Utterance
    after_s: float = 0.5
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.after_s < 0 or self.timeout_s <= 0:
            raise ValidationError("after_s must be >= 0 and timeout_s > 0")


@dataclass(frozen=True)
class Dtmf:
    """Send one `dtmf` event (media keeps flowing, as on a real line)."""

    digit: str

    def __post_init__(self) -> None:
        if self.digit not in DTMF_DIGITS:
            raise ValidationError(f"not a DTMF digit: {self.digit!r}")


@dataclass(frozen=True)
class Hangup:
    """Send `stop` and close the socket; steps after it are not run."""


@dataclass(frozen=True)
class SendRaw:
    """Send one message exactly as given, text or binary (bad-input tests); media keeps flowing."""

    message: str | bytes


@dataclass(frozen=True)
class Drop:
    """The line drops: the TCP connection is cut, with no `stop` and no WebSocket close."""


Step = Utterance | Pause | WaitForAgent | BargeIn | Dtmf | SendRaw | Hangup | Drop


def conversation(
    utterances: Iterable[Utterance],
    *,
    agent_speaks_first: bool = True,
    quiet_ms: int = 600,
    timeout_s: float = 20.0,
) -> list[Step]:
    """A plain turn-taking script: (greeting,) then each utterance answered by the agent, hang up."""
    wait = WaitForAgent(quiet_ms=quiet_ms, timeout_s=timeout_s)
    steps: list[Step] = [wait] if agent_speaks_first else []
    for utterance in utterances:
        steps += [utterance, wait]
    steps.append(Hangup())
    return steps
