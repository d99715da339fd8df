"""How a refusal of the dialer's gate is counted (metrics) and told to an operator (errors)."""

from __future__ import annotations

from reautod.campaigns.dialer import BlockedDial, BlockReason, NotAdmitted
from reautod.errors import OverloadedError, ReautodError, ValidationError
from reautod.observability.metrics import Metrics

# how `reautoctl dial` reports a refusal of the dialer's gate
REFUSAL_CODES = {BlockReason.DNC: "dnc", BlockReason.WINDOW: "outside_window",
                 BlockReason.NO_TIMEZONE: "no_timezone", BlockReason.PACING: "pacing"}


def count_refusal(metrics: Metrics, reason: BlockReason) -> None:
    """The `dial_blocked` counter of a refused dial."""
    if reason is BlockReason.WINDOW:
        metrics.dial_blocked("window")
    elif reason in (BlockReason.DNC, BlockReason.ERASED):
        metrics.dial_blocked("dnc")
    elif reason is BlockReason.BUDGET:
        metrics.dial_blocked("budget")


class BlockCounter:
    """The dial log's callback: every dial the dialer blocked is counted."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def __call__(self, entry: BlockedDial) -> None:
        count_refusal(self._metrics, entry.reason)


def dial_refused(refused: NotAdmitted, masked_phone: str) -> ReautodError:
    """The error `reautoctl dial` answers a refusal of the gate with."""
    code = REFUSAL_CODES.get(refused.reason, refused.reason.value)
    if refused.reason is BlockReason.PACING:
        return OverloadedError(f"not dialing {masked_phone} now: {refused.detail}", code=code)
    if refused.reason is BlockReason.WINDOW:
        when = refused.retry_at.isoformat() if refused.retry_at else "never"
        return ValidationError(f"outside the calling window: {refused.detail} "
                               f"({refused.source}); next allowed {when}", code=code)
    if refused.reason is BlockReason.NO_TIMEZONE:
        return ValidationError(f"cannot tell the time zone of {masked_phone}: import it as a "
                               "lead with a timezone column, then dial it", code=code)
    return ValidationError(f"{masked_phone}: {refused.detail}", code=code)
