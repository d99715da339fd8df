"""Calling windows, evaluated in the lead's local time: federal, state and campaign rules.

Every rule is checked on the lead's local wall clock (zoneinfo), so DST is handled by the time
zone database, not by us. All rules must allow a call (the strictest applies); the decision names
the first rule that blocks, with its source, and when a call could next be placed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reautod.campaigns import holidays
from reautod.campaigns.rules import HolidayScope, RuleBook, TimeRange, default_rules
from reautod.errors import ValidationError

log = logging.getLogger(__name__)

DAY = timedelta(hours=24)
SEARCH_HORIZON = timedelta(days=21)
WEEKDAYS = frozenset(range(5))


class WindowError(ValidationError):
    code = "window_invalid"


@dataclass(frozen=True)
class CampaignWindow:
    """The campaign's own hours on the lead's clock (default 09:00-20:00, Monday to Friday)."""

    start: time = time(9, 0)
    end: time = time(20, 0)
    days: frozenset[int] = WEEKDAYS  # 0 = Monday
    max_calls_per_24h: int | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise WindowError(f"campaign window end {self.end:%H:%M} is not after its start")
        if not self.days or not self.days <= frozenset(range(7)):
            raise WindowError("campaign window days must be a non-empty subset of 0..6 (Mon..Sun)")
        if self.max_calls_per_24h is not None and self.max_calls_per_24h < 1:
            raise WindowError("campaign max calls per 24 h must be at least 1")


@dataclass(frozen=True)
class BlockingRule:
    """The rule that blocked a call: a stable code, what it says, and where it comes from."""

    code: str
    detail: str
    source: str
    verified: bool = True


@dataclass(frozen=True)
class WindowDecision:
    allowed: bool
    blocking_rule: BlockingRule | None
    next_allowed_at: datetime | None  # UTC; equals `now` when allowed, None if never (horizon)
    local_time: datetime
    warnings: tuple[str, ...] = field(default=())


_CAMPAIGN_SOURCE = "campaign settings"


class CallingWindows:
    """Evaluates calling windows against a rule book."""

    def __init__(self, rules: RuleBook | None = None) -> None:
        self.rules = rules or default_rules()
        self._warned: set[tuple[str, int]] = set()

    def evaluate(
        self,
        lead_tz: str,
        lead_state: str | None,
        now_utc: datetime,
        campaign_window: CampaignWindow | None = None,
        recent_call_times: Iterable[datetime] = (),
    ) -> WindowDecision:
        """May this lead be called at `now_utc`? If not, which rule says no, and when may it?"""
        zone = _zone(lead_tz)
        if now_utc.tzinfo is None:
            raise WindowError("now must be timezone-aware (UTC)")
        now = now_utc.astimezone(UTC)
        state = _state(lead_state)
        window = campaign_window or CampaignWindow()
        calls = sorted(min(_aware(c), now) for c in recent_call_times)
        warnings = self._holiday_coverage(state, now.astimezone(zone).date())
        first = self._blockers(zone, state, window, calls, now)
        if not first:
            return WindowDecision(True, None, now, now.astimezone(zone), warnings)
        candidate = now
        blockers = first
        deadline = now + SEARCH_HORIZON
        while blockers:
            nxt = max(unblock for _, unblock in blockers)
            candidate = nxt if nxt > candidate else candidate + timedelta(minutes=1)
            if candidate > deadline:
                log.info("no calling window within %s for a lead in %s/%s", SEARCH_HORIZON,
                         lead_tz, state)
                return WindowDecision(False, first[0][0], None, now.astimezone(zone), warnings)
            blockers = self._blockers(zone, state, window, calls, candidate)
        return WindowDecision(False, first[0][0], candidate, now.astimezone(zone), warnings)

    def _blockers(
        self, zone: ZoneInfo, state: str | None, window: CampaignWindow,
        calls: list[datetime], at: datetime,
    ) -> list[tuple[BlockingRule, datetime]]:
        """Every rule blocking a call at `at`, each with the earliest instant it stops blocking."""
        local = at.astimezone(zone)
        day, clock = local.date(), local.time().replace(tzinfo=None)
        found: list[tuple[BlockingRule, datetime]] = []
        rules = self.rules

        def hours(rng: TimeRange, rule: BlockingRule) -> None:
            if not rng.contains(clock):
                found.append((rule, _next_start(zone, day, clock, rng, at)))

        hours(rules.federal_hours, BlockingRule(
            "federal_hours", f"federal calling hours {rules.federal_hours}", rules.federal_source))
        rule = rules.rule_for(state, day)
        if rule is not None:
            src, ok = rule.source, rule.verified
            holiday = self._holiday(rule.no_holidays, rule.state, day)
            state_hours = rule.hours_on(day.weekday())
            if holiday is not None:
                name, h_src, h_ok = holiday
                found.append((BlockingRule("state_holiday", f"{rule.state}: no calls on {name}",
                                           f"{src}; {h_src}", ok and h_ok),
                              _midnight_after(zone, day, at)))
            elif state_hours is None:
                found.append((BlockingRule("state_sunday", f"{rule.state}: no calls on Sunday",
                                           src, ok), _midnight_after(zone, day, at)))
            else:
                hours(state_hours, BlockingRule(
                    "state_hours", f"{rule.state} calling hours {state_hours}", src, ok))
            if rule.max_calls_per_24h is not None:
                cap = _cap(calls, rule.max_calls_per_24h, at)
                if cap is not None:
                    found.append((BlockingRule(
                        "state_max_calls_24h",
                        f"{rule.state}: at most {rule.max_calls_per_24h} calls per 24 h", src, ok),
                        cap))
        if day.weekday() not in window.days:
            found.append((BlockingRule("campaign_day", f"campaign does not call on {day:%A}",
                                       _CAMPAIGN_SOURCE), _midnight_after(zone, day, at)))
        else:
            hours(TimeRange(window.start, window.end), BlockingRule(
                "campaign_hours", f"campaign hours {window.start:%H:%M}-{window.end:%H:%M}",
                _CAMPAIGN_SOURCE))
        if window.max_calls_per_24h is not None:
            cap = _cap(calls, window.max_calls_per_24h, at)
            if cap is not None:
                found.append((BlockingRule(
                    "campaign_max_calls_24h",
                    f"campaign: at most {window.max_calls_per_24h} calls per 24 h",
                    _CAMPAIGN_SOURCE), cap))
        return found

    def _holiday(self, scope: HolidayScope, state: str, day: date) -> tuple[str, str, bool] | None:
        """(name, source, verified) of the holiday banning calls on `day`, if any."""
        if scope is HolidayScope.NONE:
            return None
        name = holidays.federal_holiday(day)
        if name is not None:
            return name, holidays.SOURCE, True
        listed = self.rules.state_holidays.get(state)
        if scope is HolidayScope.FEDERAL_AND_STATE and listed and day in listed.dates:
            return f"a {state} state holiday", listed.source, listed.verified
        return None

    def _holiday_coverage(self, state: str | None, day: date) -> tuple[str, ...]:
        rule = self.rules.rule_for(state, day)
        if rule is None or rule.no_holidays is not HolidayScope.FEDERAL_AND_STATE:
            return ()
        listed = self.rules.state_holidays.get(rule.state)
        if listed and any(d.year == day.year for d in listed.dates):
            return ()
        message = f"no {rule.state} state holidays listed for {day.year}: only federal ones apply"
        if (rule.state, day.year) not in self._warned:
            self._warned.add((rule.state, day.year))
            log.warning("%s; add them to the rules file", message)
        return (message,)


_DEFAULT: CallingWindows | None = None


def evaluate(
    lead_tz: str,
    lead_state: str | None,
    now_utc: datetime,
    campaign_window: CampaignWindow | None = None,
    recent_call_times: Iterable[datetime] = (),
) -> WindowDecision:
    """`CallingWindows().evaluate(...)` with the shipped rule book."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = CallingWindows()
    return _DEFAULT.evaluate(lead_tz, lead_state, now_utc, campaign_window, recent_call_times)


def local_to_utc(zone: ZoneInfo, day: date, clock: time) -> datetime:
    """The first instant at which the local wall clock in `zone` reads `day clock` or later.

    For a wall time skipped by a DST jump this is the jump itself, not an instant an hour off.
    """
    # fold=0: the first of repeated times, and for a skipped time the pre-jump offset, which
    # lands after the jump (the search below relies on that).
    wall = datetime.combine(day, clock.replace(tzinfo=None, fold=0))
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap: search the day before (a few zones skipped a whole day) for the first
    # second whose wall clock reads `wall` or later.
    lo, hi = int(instant.timestamp()) - 26 * 3600, int(instant.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _next_start(zone: ZoneInfo, day: date, clock: time, rng: TimeRange, at: datetime) -> datetime:
    # After today's window, tomorrow may start earlier (per-weekday hours): jump only to
    # midnight and let the caller re-evaluate, so the answer is never later than the truth.
    if clock >= rng.start:
        return _midnight_after(zone, day, at)
    start = local_to_utc(zone, day, rng.start)
    return start if start > at else at + timedelta(minutes=1)


def _midnight_after(zone: ZoneInfo, day: date, at: datetime) -> datetime:
    start = local_to_utc(zone, day + timedelta(days=1), time(0, 0))
    return start if start > at else at + timedelta(minutes=1)


def _cap(calls: list[datetime], limit: int, at: datetime) -> datetime | None:
    """When the rolling-24-h count drops below `limit`, or None if it already is below."""
    in_window = [c for c in calls if at - DAY < c <= at]
    if len(in_window) < limit:
        return None
    return in_window[len(in_window) - limit] + DAY


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise WindowError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise WindowError(f"unknown time zone {name!r}") from err


def _state(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    code = value.strip().upper()
    if len(code) != 2 or not code.isalpha() or not code.isascii():
        raise WindowError(f"state must be a two-letter code, got {value!r}")
    return code


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise WindowError("recent call times must be timezone-aware")
    return moment.astimezone(UTC)
