"""Legal due dates of subject requests (shared/compliance.md, Privacy).

- GDPR and UK GDPR (Art. 12(3)): answer within one month of receipt: the same day of the next
  month, or its last day when that month is shorter (31 January -> 28/29 February). Extendable
  by two further months with notice to the person (not modelled: record it in the request).
- CCPA (Cal. Civ. Code 1798.130, regs 7021): acknowledge within 10 business days, answer within
  45 calendar days (+45 with notice). Business days are Monday to Friday except US federal
  holidays (observed days included, reautod.campaigns.holidays).

Days are counted on the UTC calendar from the moment the request was received; the due moment
keeps the time of day of receipt.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reautod.campaigns.holidays import federal_holiday
from reautod.errors import ValidationError
from reautod.store.enums import PrivacyRegime

CCPA_ACKNOWLEDGE_BUSINESS_DAYS = 10
CCPA_ANSWER_DAYS = 45


@dataclass(frozen=True)
class Deadlines:
    acknowledge_by: datetime | None
    due_at: datetime


def add_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_business_days(moment: datetime, days: int) -> datetime:
    out = moment
    while days:
        out += timedelta(days=1)
        if out.weekday() < 5 and federal_holiday(out.date()) is None:
            days -= 1
    return out


def deadlines(regime: PrivacyRegime, received_at: datetime) -> Deadlines:
    if received_at.tzinfo is None:
        raise ValidationError("received_at must be timezone-aware")
    received_at = received_at.astimezone(UTC)
    if regime is PrivacyRegime.CCPA:
        return Deadlines(add_business_days(received_at, CCPA_ACKNOWLEDGE_BUSINESS_DAYS),
                         received_at + timedelta(days=CCPA_ANSWER_DAYS))
    return Deadlines(None, add_month(received_at))
