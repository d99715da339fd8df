"""The calling-hour rule book: federal and state rules loaded from editable TOML data.

The shipped file is reautod/campaigns/rules/us_states.toml; a site can point at its own copy.
Every problem in the file is reported with its key path, and a broken file is refused whole.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from reautod.errors import ConfigError

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_STATE = re.compile(r"^[A-Z]{2}$")
_RULE_KEYS = {"hours", "saturday_hours", "sunday_hours", "no_sunday", "no_holidays",
              "max_calls_per_24h", "verified", "source", "note"}


class HolidayScope(StrEnum):
    NONE = "none"
    FEDERAL = "federal"
    FEDERAL_AND_STATE = "federal+state"


@dataclass(frozen=True)
class TimeRange:
    """Allowed local wall-clock times, start inclusive, end exclusive, within one day."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"end {self.end:%H:%M} is not after start {self.start:%H:%M}")

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class StateRule:
    """One state's rule; values as in the data file."""

    state: str
    hours: TimeRange
    saturday_hours: TimeRange | None = None
    sunday_hours: TimeRange | None = None
    no_sunday: bool = False
    no_holidays: HolidayScope = HolidayScope.NONE
    max_calls_per_24h: int | None = None
    verified: bool = False
    source: str = ""
    note: str = ""

    def hours_on(self, weekday: int) -> TimeRange | None:
        """The allowed range on a weekday (0 = Monday), or None if the whole day is banned."""
        if weekday == 6:
            return None if self.no_sunday else (self.sunday_hours or self.hours)
        if weekday == 5:
            return self.saturday_hours or self.hours
        return self.hours


@dataclass(frozen=True)
class StateHolidays:
    """A state's holiday dates (data per year), with their source."""

    dates: frozenset[date]
    source: str
    verified: bool


@dataclass(frozen=True)
class RuleBook:
    """Federal hours, state rules and state holiday lists."""

    federal_hours: TimeRange
    federal_source: str
    states: dict[str, StateRule] = field(default_factory=dict)
    state_holidays: dict[str, StateHolidays] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RuleBook:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read rules file {path}", [("<file>", str(err))]) from err
        return cls.from_toml(text, origin=str(path))

    @classmethod
    def from_toml(cls, text: str, origin: str = "<rules>") -> RuleBook:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{origin}: not valid TOML", [("<file>", str(err))]) from err
        problems: list[tuple[str, str]] = []
        book = _parse(data, problems)
        if problems or book is None:
            raise ConfigError(f"{origin}: {len(problems)} problem(s) in the rules", problems)
        return book


@lru_cache(maxsize=1)
def default_rules() -> RuleBook:
    """The rule book shipped with reautod."""
    text = resources.files("reautod.campaigns").joinpath("rules/us_states.toml").read_text(
        encoding="utf-8"
    )
    return RuleBook.from_toml(text, origin="reautod/campaigns/rules/us_states.toml")


def parse_hhmm(value: object, where: str, problems: list[tuple[str, str]]) -> time | None:
    if not isinstance(value, str) or not _HHMM.match(value):
        problems.append((where, f"expected \"HH:MM\" (00:00-23:59), got {value!r}"))
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _range(value: object, where: str, problems: list[tuple[str, str]]) -> TimeRange | None:
    if not (isinstance(value, list) and len(value) == 2):
        problems.append((where, f"expected [\"HH:MM\", \"HH:MM\"], got {value!r}"))
        return None
    start = parse_hhmm(value[0], where, problems)
    end = parse_hhmm(value[1], where, problems)
    if start is None or end is None:
        return None
    try:
        return TimeRange(start, end)
    except ValueError as err:
        problems.append((where, str(err)))
        return None


def _parse(data: dict[str, Any], problems: list[tuple[str, str]]) -> RuleBook | None:
    federal = data.get("federal")
    if not isinstance(federal, dict):
        problems.append(("federal", "missing [federal] table"))
        return None
    federal_hours = _range(federal.get("hours"), "federal.hours", problems)
    states: dict[str, StateRule] = {}
    for code, raw in (data.get("states") or {}).items():
        rule = _state_rule(code, raw, problems)
        if rule is not None:
            states[code] = rule
    holidays: dict[str, StateHolidays] = {}
    for code, raw in ((data.get("holidays") or {}).get("state") or {}).items():
        where = f"holidays.state.{code}"
        if not _STATE.match(code) or not isinstance(raw, dict):
            problems.append((where, "expected a table under a two-letter state code"))
            continue
        days = raw.get("dates", [])
        if not isinstance(days, list) or not all(isinstance(d, date) for d in days):
            problems.append((f"{where}.dates", "expected a list of TOML dates (YYYY-MM-DD)"))
            continue
        if not raw.get("source"):
            problems.append((f"{where}.source", "every holiday list needs its source"))
        holidays[code] = StateHolidays(frozenset(days), str(raw.get("source", "")),
                                       raw.get("verified", False) is True)
    if federal_hours is None:
        return None
    return RuleBook(federal_hours, str(federal.get("source", "")), states, holidays)


def _state_rule(code: str, raw: object, problems: list[tuple[str, str]]) -> StateRule | None:
    where = f"states.{code}"
    if not _STATE.match(code) or not isinstance(raw, dict):
        problems.append((where, "expected a table under a two-letter state code"))
        return None
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        problems.append((where, f"unknown key(s): {', '.join(sorted(unknown))}"))
    before = len(problems)
    hours = _range(raw.get("hours"), f"{where}.hours", problems)
    saturday = _range(raw["saturday_hours"], f"{where}.saturday_hours", problems) if (
        "saturday_hours" in raw) else None
    sunday = _range(raw["sunday_hours"], f"{where}.sunday_hours", problems) if (
        "sunday_hours" in raw) else None
    cap = raw.get("max_calls_per_24h")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        problems.append((f"{where}.max_calls_per_24h", f"expected a positive integer, got {cap!r}"))
    try:
        scope = HolidayScope(raw.get("no_holidays", "none"))
    except ValueError:
        problems.append((f"{where}.no_holidays", "expected none, federal or federal+state"))
        scope = HolidayScope.NONE
    for flag in ("no_sunday", "verified"):
        if not isinstance(raw.get(flag, False), bool):
            problems.append((f"{where}.{flag}", "expected true or false"))
    if not raw.get("source"):
        problems.append((f"{where}.source", "every rule needs its source"))
    if len(problems) > before or hours is None:
        return None
    return StateRule(code, hours, saturday, sunday, bool(raw.get("no_sunday", False)), scope,
                     cap, bool(raw.get("verified", False)), str(raw["source"]),
                     str(raw.get("note", "")))
