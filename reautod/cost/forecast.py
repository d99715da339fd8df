"""Burn rate, projected period-end spend, and when the premium voice must go: pure arithmetic.

Burn rate is the spend of the last `window_s` seconds (or of the period so far, if shorter)
per second; the projection assumes that rate holds until the period ends. For campaigns that
only dial in calling hours this over-estimates across nights, which errs on the side of the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from reautod.cost.money import to_micros

# Why the premium voice is or is not allowed under a budget.
PREMIUM_OK = "ok"
PREMIUM_STOPPED = "spending_stopped"
PREMIUM_AT_CAP = "budget_cap"
PREMIUM_OVERRUN = "premium_overrun"  # the premium share is what would overrun the cap
PREMIUM_PROJECTED_OVER = "projected_over"  # the projection overruns even without premium


@dataclass(frozen=True)
class Forecast:
    burn_micros_per_hour: int
    projected_micros: int  # spent + total burn until the period ends
    premium_still_to_spend_micros: int  # the premium part of that future burn


def project(*, spent_micros: int, recent_micros: int, recent_premium_micros: int,
            window_s: float, remaining_s: float) -> Forecast | None:
    """None when there is nothing to extrapolate from (no elapsed window)."""
    if window_s <= 0:
        return None
    rate = Decimal(recent_micros) / Decimal(str(window_s))
    premium_rate = Decimal(recent_premium_micros) / Decimal(str(window_s))
    remaining = Decimal(str(max(0.0, remaining_s)))
    return Forecast(
        burn_micros_per_hour=to_micros(rate * 3600),
        projected_micros=spent_micros + to_micros(rate * remaining),
        premium_still_to_spend_micros=to_micros(premium_rate * remaining),
    )


def premium_verdict(*, stopped: bool, spent_micros: int, limit_micros: int,
                    forecast: Forecast | None) -> tuple[bool, str]:
    """Premium goes first: it is off at the cap and as soon as the projection overruns the cap,
    while dials go on with the local voice until the cap itself. The reason says whether the
    premium share alone explains the overrun."""
    if stopped:
        return False, PREMIUM_STOPPED
    if spent_micros >= limit_micros:
        return False, PREMIUM_AT_CAP
    if forecast is not None and forecast.projected_micros > limit_micros:
        without_premium = forecast.projected_micros - forecast.premium_still_to_spend_micros
        return False, PREMIUM_OVERRUN if without_premium <= limit_micros else PREMIUM_PROJECTED_OVER
    return True, PREMIUM_OK
