"""The shipped calling-rules data against compliance.md's 2026-12-06 corrections, one test per
change, each through the calling windows a dial is decided by."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from reautod.campaigns.rules import HolidayScope, RuleBook, default_rules
from reautod.campaigns.windows import CallingWindows, CampaignWindow, WindowDecision
from reautod.errors import ConfigError

RULES = default_rules()
WINDOWS = CallingWindows(RULES)
# a campaign that allows everything the law allows, so only federal and state rules decide
OPEN_CAMPAIGN = CampaignWindow(time(0, 0), time(23, 59), frozenset(range(7)))
ZONE = {"RI": "America/New_York", "UT": "America/Denver", "NM": "America/Denver",
        "OR": "America/Los_Angeles", "PA": "America/New_York", "WY": "America/Denver",
        "WA": "America/Los_Angeles"}


def at(state: str, day: date, clock: time, calls: list[datetime] | None = None) -> WindowDecision:
    local = datetime.combine(day, clock, tzinfo=ZoneInfo(ZONE[state]))
    return WINDOWS.evaluate(ZONE[state], state, local.astimezone(UTC), OPEN_CAMPAIGN, calls or [])


def blocked_by(decision: WindowDecision) -> str | None:
    return decision.blocking_rule.code if decision.blocking_rule else None


def nth_monday(year: int, month: int, n: int) -> date:
    mondays = [week[calendar.MONDAY] for week in calendar.monthcalendar(year, month)
               if week[calendar.MONDAY]]
    return date(year, month, mondays[n - 1])


@pytest.mark.parametrize("state,citation", [
    ("FL", "Fla. Stat. 501.616(6)(a)-(b)"), ("MS", "Miss. Code 77-3-723(1)"),
    ("AL", "Ala. Admin. Code r. 770-X-5-.17"), ("RI", "R.I. Gen. Laws 5-61-2(2) and 5-61-3.6"),
    ("MD", "Com. Law 14-4502(c)"), ("KY", "KRS 367.46955(16)"), ("MA", "M.G.L. c.159C s.3"),
    ("MI", "MCL 750.540e(1)(f)"), ("MN", "Minn. Stat. 325E.30"), ("IL", "815 ILCS 413/15(a)"),
    ("NM", "NMSA 57-12-22(B)(5)"), ("UT", "Utah Code 13-25a-103(3)"),
])
def test_citations(state: str, citation: str) -> None:
    assert citation in RULES.states[state].source


def test_florida_names_501_059_as_the_consent_section_only() -> None:
    source = RULES.states["FL"].source
    assert "501.059 is the consent section" in source and "SB 1120 of 2021" in source


def test_mississippi_has_no_holidays_since_the_2023_repeal() -> None:
    rule = RULES.states["MS"]
    assert rule.no_holidays is HolidayScope.NONE and "repealed in 2023" in rule.note
    assert "MS" not in RULES.state_holidays


@pytest.mark.parametrize("year", [2026, 2027])
def test_rhode_island_blocks_victory_day(year: int) -> None:
    victory = nth_monday(year, 8, 2)
    assert victory == {2026: date(2026, 8, 10), 2027: date(2027, 8, 9)}[year]
    decision = at("RI", victory, time(12))
    assert blocked_by(decision) == "state_holiday" and decision.blocking_rule is not None
    assert decision.blocking_rule.verified
    assert at("RI", victory + timedelta(days=1), time(12)).allowed
    # federal holidays too: Independence Day 2026 (a Saturday) and its observed Friday
    assert blocked_by(at("RI", date(2026, 7, 3), time(12))) == "state_holiday"
    assert RULES.states["RI"].no_holidays is HolidayScope.FEDERAL_AND_STATE


@pytest.mark.parametrize("day", [date(2026, 6, 15), date(2027, 6, 21)])
def test_utah_blocks_juneteenth_on_its_monday(day: date) -> None:
    assert day == nth_monday(day.year, 6, 3)
    assert blocked_by(at("UT", day, time(12))) == "state_holiday"
    assert at("UT", day + timedelta(days=1), time(12)).allowed


def test_new_mexico_sunday_ban_is_a_stated_strict_choice() -> None:
    rule = RULES.states["NM"]
    assert "deliberate strict choice" in rule.note and "not the law" in rule.note
    assert blocked_by(at("NM", date(2026, 12, 6), time(12))) == "state_sunday"


def test_oregon_from_2026_hours_and_three_calls_per_day() -> None:
    assert at("OR", date(2025, 12, 30), time(20, 30)).allowed  # before HB 3865: federal hours
    late = at("OR", date(2026, 1, 6), time(20, 30))
    assert blocked_by(late) == "state_hours" and late.blocking_rule is not None
    assert "HB 3865" in late.blocking_rule.source
    day = date(2026, 1, 6)
    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(ZONE["OR"])).astimezone(UTC)
    three = [noon - timedelta(hours=h) for h in (1, 2, 3)]
    assert blocked_by(at("OR", day, time(12), three)) == "state_max_calls_24h"
    assert at("OR", day, time(12), three[:2]).allowed


def test_pennsylvania_legal_holidays_since_act_73_of_2019() -> None:
    good_friday = date(2026, 4, 3)
    decision = at("PA", good_friday, time(12))
    assert blocked_by(decision) == "state_holiday"
    assert decision.blocking_rule is not None and not decision.blocking_rule.verified  # the dates
    assert "Act 73 of 2019" in RULES.states["PA"].source
    assert at("PA", date(2019, 4, 19), time(12)).allowed  # Good Friday before the act


def test_pennsylvania_act_47_of_2026_ships_unverified() -> None:
    before = at("PA", date(2026, 10, 16), time(19, 30))  # a Friday before it takes effect
    assert before.allowed
    sunday = at("PA", date(2026, 10, 18), time(12))
    assert blocked_by(sunday) == "state_sunday" and sunday.blocking_rule is not None
    assert not sunday.blocking_rule.verified and "UNVERIFIED" in sunday.blocking_rule.source
    evening = at("PA", date(2026, 10, 19), time(19, 30))
    assert blocked_by(evening) == "state_hours"
    assert at("PA", date(2026, 10, 19), time(18, 59)).allowed
    assert blocked_by(at("PA", date(2026, 11, 3), time(12))) == "state_holiday"  # Election Day


def test_wyoming_is_unverified_and_strict() -> None:
    decision = at("WY", date(2026, 12, 7), time(20, 30))
    assert blocked_by(decision) == "state_hours" and decision.blocking_rule is not None
    assert not decision.blocking_rule.verified


@pytest.mark.parametrize("state,point", [("NV", "the 20:00 end"), ("TX", "Sunday noon"),
                                         ("LA", "which holidays the LPSC enforces")])
def test_open_points_stay_strict_and_flagged(state: str, point: str) -> None:
    rule = RULES.states[state]
    assert not rule.verified and point in rule.note


def test_utah_holiday_amendments_stay_flagged() -> None:
    assert not RULES.state_holidays["UT"].verified
    assert "2026-27 amendments" in RULES.state_holidays["UT"].source


def test_washington_blocks_ai_voice_sales_unless_acknowledged() -> None:
    day = date(2026, 12, 7)
    block = RULES.ai_voice_sales_block("WA", day, sales=True)
    assert block is not None and block.code == "state_ai_voice_sales"
    assert "RCW 80.36.400(2)" in block.source and "HB 1051" in block.source
    assert not block.verified and "acknowledge" in block.detail
    assert RULES.ai_voice_sales_block("WA", day, sales=True, acknowledged=["wa"]) is None
    assert RULES.ai_voice_sales_block("WA", day, sales=False) is None
    assert RULES.ai_voice_sales_block("OR", day, sales=True) is None
    assert RULES.ai_voice_sales_block(None, day, sales=True) is None
    assert at("WA", day, time(12)).allowed  # the hours themselves do not block


def test_effective_dates_amendments_and_restrictions_are_validated() -> None:
    text = """
[federal]
hours = ["08:00", "21:00"]
[states.PA]
hours = ["08:00", "21:00"]
effective = "2019-12-03"
source = "x"
[[states.PA.amendments]]
hours = ["09:00", "19:00"]
source = "y"
[[states.PA.amendments]]
effective = 2020-01-01
bogus = 1
[states.OR]
effective = 2026-01-01
source = "z"
[states.WA]
hours = ["08:00", "20:00"]
source = "w"
ai_voice_sales = { blocked = "yes", extra = 1 }
[states.ID]
hours = ["08:00", "20:00"]
source = "v"
amendments = "soon"
"""
    with pytest.raises(ConfigError) as err:
        RuleBook.from_toml(text)
    paths = {p for p, _ in err.value.problems}
    assert {"states.PA.effective", "states.PA.amendments[0].effective",
            "states.PA.amendments[1]", "states.PA.amendments[1].source", "states.OR.hours",
            "states.WA.ai_voice_sales", "states.WA.ai_voice_sales.blocked",
            "states.ID.amendments"} <= paths
    out_of_order = """
[federal]
hours = ["08:00", "21:00"]
[states.PA]
hours = ["08:00", "21:00"]
effective = 2020-01-01
source = "x"
[[states.PA.amendments]]
effective = 2019-01-01
source = "y"
"""
    with pytest.raises(ConfigError) as err:
        RuleBook.from_toml(out_of_order)
    assert "states.PA.amendments[0].effective" in {p for p, _ in err.value.problems}
