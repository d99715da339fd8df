"""Budget periods in a time zone: where the current day, ISO week or month starts and ends.

Pure functions, no I/O. Boundaries are local midnights converted to UTC through `zoneinfo`, so
a day is 23 or 25 hours long across a DST change and a month is never "30 days". A midnight that
a DST change skips (some zones move the clock at 00:00) starts the period at the first instant
that exists, which is what `zoneinfo` gives for fold=0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reautod.errors import ValidationError
from reautod.store.enums import BudgetPeriod

# The start of "total" budgets: before any ledger row reautod can have written.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PeriodWindow:
    """[start, end) in UTC; `end` is None for a budget that never rolls over."""

    period: BudgetPeriod
    start: datetime
    end: datetime | None

    @property
    def key(self) -> str:
        """Names this window in counter keys and alert rows (its UTC start)."""
        return self.start.strftime("%Y%m%dT%H%M")

    def fraction_elapsed(self, now: datetime) -> float | None:
        if self.end is None:
            return None
        total = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (now - self.start).total_seconds() / total))


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or a ValidationError that names it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValidationError(f"unknown time zone {name!r} (use an IANA name such as "
                              "America/New_York)") from err


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def window(period: BudgetPeriod, tz: ZoneInfo, now: datetime) -> PeriodWindow:
    """The period containing `now` (timezone-aware) in `tz`."""
    if now.tzinfo is None:
        raise ValidationError("now must be timezone-aware")
    if period is BudgetPeriod.TOTAL:
        return PeriodWindow(period, EPOCH, None)
    today = now.astimezone(tz).date()
    if period is BudgetPeriod.DAY:
        first, after = today, today + timedelta(days=1)
    elif period is BudgetPeriod.WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return PeriodWindow(period, _local_midnight(first, tz), _local_midnight(after, tz))
