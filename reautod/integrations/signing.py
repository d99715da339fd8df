"""HMAC-SHA256 signatures of webhook bodies, over a timestamp and the body.

Header: `Reautod-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
A receiver recomputes the HMAC over the raw body bytes, compares in constant time, and refuses a
timestamp more than `REPLAY_WINDOW_S` away from its clock (a captured request cannot be replayed
later). The same scheme signs requests to our incoming endpoints. See docs/integrations.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from enum import StrEnum

SIGNATURE_HEADER = "Reautod-Signature"
REPLAY_WINDOW_S = 300


class Verdict(StrEnum):
    VALID = "valid"
    MISSING = "missing"
    MALFORMED = "malformed"
    STALE = "stale"  # outside the replay window
    MISMATCH = "mismatch"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The signature header's value for `body` at `timestamp` (now by default)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(
    secret: str, body: bytes, header: str | None, *, now: float | None = None,
    window_s: int = REPLAY_WINDOW_S,
) -> Verdict:
    """Check a signature header against the raw body; any `v1` may match (key rotation)."""
    if not header:
        return Verdict.MISSING
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            macs.append(value)
    if timestamp is None or not macs:
        return Verdict.MALFORMED
    current = time.time() if now is None else now
    if abs(current - timestamp) > window_s:
        return Verdict.STALE
    expected = _mac(secret, timestamp, body)
    if any(hmac.compare_digest(expected, mac) for mac in macs):
        return Verdict.VALID
    return Verdict.MISMATCH
