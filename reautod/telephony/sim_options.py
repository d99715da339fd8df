"""Options and the one error of the Twilio simulator (`reautod.telephony.simulator`)."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from reautod.errors import ReautodError, ValidationError


class SimulatorError(ReautodError):
    """The simulator could not open the media stream (refused, bad URL, rejected upgrade).

    `status` is the HTTP status when the server answered the upgrade with an error (e.g. 403).
    """

    code = "simulator_failed"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass(frozen=True)
class CallOptions:
    """How the simulated Twilio side connects and what it announces."""

    url: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. X-Twilio-Signature
    account_sid: str = field(default_factory=lambda: _sid("AC"))
    call_sid: str = field(default_factory=lambda: _sid("CA"))
    stream_sid: str = field(default_factory=lambda: _sid("MZ"))
    tracks: tuple[str, ...] = ("inbound",)
    speed: float = 1.0  # call clock / wall clock
    omit_optional_fields: bool = False  # drop sequenceNumber, track, chunk, timestamp
    timestamp_start_ms: int = 0  # media `timestamp` of the first frame
    record_audio: bool = True  # keep caller/agent audio in the result (for WAV files)
    max_call_s: float | None = None  # call-clock cap; then hang up with EndedBy.MAX_DURATION
    before_start: tuple[str | bytes, ...] = ()  # raw messages between `connected` and `start`
    open_timeout_s: float = 10.0  # wall clock
    close_timeout_s: float = 5.0  # wall clock
    # wss:// only: the TLS context (e.g. one that trusts a self-signed certificate); None uses
    # the system's trust store
    ssl: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValidationError(f"speed must be positive, got {self.speed}")
        if self.max_call_s is not None and self.max_call_s <= 0:
            raise ValidationError("max_call_s must be positive")
        if self.ssl is not None and not self.url.startswith("wss://"):
            raise ValidationError("an ssl context needs a wss:// URL")
