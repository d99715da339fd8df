"""Inbound calls under load: a caller the box cannot take hears a polite message, not silence.

Twilio asks the voice webhook what to do with an inbound call before its media stream exists.
`InboundShedding.shed_inbound()` asks the call manager the same question a stream would
(`check_admission`: draining, engines missing, at the live-call limit, lowered after running
out of memory); when the answer is no, the webhook answers with the configured busy message
(`twilio.busy_message`, or `busy_audio_url` played) and a hang-up, instead of a stream the
manager would close at once. The shed call is counted (`reautod_inbound_shed{reason}`) and
the load governor keeps a slot free for `inbound_reserve_s`, so the caller who tries again
outranks the dialer's next new dial.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from reautod.errors import OverloadedError, UnavailableError


class AdmissionCheck(Protocol):
    def check_admission(self) -> None: ...


class ShedMetrics(Protocol):
    def inbound_shed(self, reason: str) -> None: ...


class InboundReserve(Protocol):
    def inbound_shed(self) -> None: ...


class InboundShedding:
    """The voice webhook's `InboundGate` (reautod.telephony.webhooks)."""

    def __init__(self, manager: Callable[[], AdmissionCheck | None], reserve: InboundReserve,
                 metrics: ShedMetrics) -> None:
        self.manager = manager  # the call manager, once it exists
        self.reserve = reserve
        self.metrics = metrics

    def shed_inbound(self) -> str | None:
        manager = self.manager()
        if manager is None:
            return None
        try:
            manager.check_admission()
        except (OverloadedError, UnavailableError) as err:
            self.metrics.inbound_shed(err.code)
            self.reserve.inbound_shed()
            return err.message
        return None
