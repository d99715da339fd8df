"""US federal holidays, computed (5 U.S.C. 6103), with the observed-day rule.

A holiday on a Saturday is observed on the Friday before, one on a Sunday on the Monday after
(Executive Order 11582 for federal employees). Calling bans are applied to both the holiday and
its observed day, the strict reading.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from functools import lru_cache

SOURCE = "5 U.S.C. 6103 (computed; observed-day rule of E.O. 11582)"


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    if day.weekday() == calendar.SATURDAY:
        return day - timedelta(days=1)
    if day.weekday() == calendar.SUNDAY:
        return day + timedelta(days=1)
    return day


def _holidays_of(year: int) -> dict[date, str]:
    fixed = {
        date(year, 1, 1): "New Year's Day",
        date(year, 7, 4): "Independence Day",
        date(year, 11, 11): "Veterans Day",
        date(year, 12, 25): "Christmas Day",
    }
    if year >= 2021:
        fixed[date(year, 6, 19)] = "Juneteenth National Independence Day"
    days = dict(fixed)
    for day, name in fixed.items():
        days.setdefault(_observed(day), f"{name} (observed)")
    days[_nth_weekday(year, 1, calendar.MONDAY, 3)] = "Birthday of Martin Luther King, Jr."
    days[_nth_weekday(year, 2, calendar.MONDAY, 3)] = "Washington's Birthday"
    days[_last_weekday(year, 5, calendar.MONDAY)] = "Memorial Day"
    days[_nth_weekday(year, 9, calendar.MONDAY, 1)] = "Labor Day"
    days[_nth_weekday(year, 10, calendar.MONDAY, 2)] = "Columbus Day"
    days[_nth_weekday(year, 11, calendar.THURSDAY, 4)] = "Thanksgiving Day"
    return days


@lru_cache(maxsize=64)
def federal_holidays(year: int) -> dict[date, str]:
    """Holidays and observed days falling in `year` (New Year's observed on 31 Dec included)."""
    days: dict[date, str] = {}
    for source_year in (year - 1, year, year + 1):
        for day, name in _holidays_of(source_year).items():
            if day.year == year:
                days.setdefault(day, name)
    return days


def federal_holiday(day: date) -> str | None:
    """The holiday's name if `day` is a federal holiday or an observed one, else None."""
    return federal_holidays(day.year).get(day)
