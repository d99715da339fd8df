from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reautod.cost.periods import EPOCH, window, zone
from reautod.errors import ValidationError
from reautod.store.enums import BudgetPeriod

NY = zone("America/New_York")


def test_days_are_local_midnights_and_23_or_25_hours_across_dst() -> None:
    spring = window(BudgetPeriod.DAY, NY, datetime(2026, 3, 8, 12, tzinfo=UTC))
    assert spring.start == datetime(2026, 3, 8, 5, tzinfo=UTC)  # midnight EST
    assert spring.end is not None and spring.end - spring.start == timedelta(hours=23)
    autumn = window(BudgetPeriod.DAY, NY, datetime(2026, 11, 1, 12, tzinfo=UTC))
    assert autumn.start == datetime(2026, 11, 1, 4, tzinfo=UTC)  # midnight EDT
    assert autumn.end is not None and autumn.end - autumn.start == timedelta(hours=25)
    # 23:30 local on the long day is still that day; 00:30 the next day is a new one
    assert window(BudgetPeriod.DAY, NY, datetime(2026, 11, 2, 4, 30, tzinfo=UTC)).start == autumn.start
    assert window(BudgetPeriod.DAY, NY, datetime(2026, 11, 2, 5, 30, tzinfo=UTC)).start == autumn.end


def test_weeks_start_monday_and_months_on_the_first_in_the_zone() -> None:
    at = datetime(2026, 11, 5, 3, tzinfo=UTC)  # Wednesday 22:00 on the 4th in New York
    week = window(BudgetPeriod.WEEK, NY, at)
    assert week.start == datetime(2026, 11, 2, 5, tzinfo=UTC)  # Monday 00:00 EST
    assert week.end == datetime(2026, 11, 9, 5, tzinfo=UTC)
    month = window(BudgetPeriod.MONTH, NY, datetime(2026, 11, 1, 3, tzinfo=UTC))  # Oct 31 local
    assert month.start == datetime(2026, 10, 1, 4, tzinfo=UTC)
    assert month.end == datetime(2026, 11, 1, 4, tzinfo=UTC)
    december = window(BudgetPeriod.MONTH, zone("UTC"), datetime(2026, 12, 31, 23, tzinfo=UTC))
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)
    total = window(BudgetPeriod.TOTAL, NY, at)
    assert (total.start, total.end, total.fraction_elapsed(at)) == (EPOCH, None, None)
    assert week.fraction_elapsed(week.start + timedelta(days=3.5)) == pytest.approx(0.5, abs=0.01)


def test_bad_zones_and_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        zone("Mars/Olympus")
    with pytest.raises(ValidationError):
        window(BudgetPeriod.DAY, NY, datetime(2026, 1, 1))
