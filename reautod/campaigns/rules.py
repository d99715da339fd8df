"""The calling-hour rule book: federal and state rules loaded from editable TOML data.

The shipped file is reautod/campaigns/rules/us_states.toml; a site can point at its own copy.
Every problem in the file is reported with its key path, and a broken file is refused whole.

Rules change by statute: a state rule may take effect on a date (`effective`) and carry
amendments that override some of its keys from their own date; `rule_for(state, day)` gives the
rule in force on a day. A state may also forbid artificial-voice sales calls outright
(`ai_voice_sales`): `ai_voice_sales_block` says whether a sales campaign may dial there.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from reautod.errors import ConfigError

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_STATE = re.compile(r"^[A-Z]{2}$")
_OVERRIDABLE = {"hours", "saturday_hours", "sunday_hours", "no_sunday", "no_holidays",
                "max_calls_per_24h", "verified", "source", "note"}
_RULE_KEYS = _OVERRIDABLE | {"effective", "amendments", "ai_voice_sales"}
_AMENDMENT_KEYS = _OVERRIDABLE | {"effective"}
_AI_VOICE_KEYS = {"blocked", "verified", "source", "note"}


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
class AiVoiceSales:
    """A state's restriction on artificial-voice sales calls (`blocked`: unless acknowledged)."""

    blocked: bool
    verified: bool
    source: str
    note: str = ""


@dataclass(frozen=True)
class RuleBlock:
    """A rule that forbids a dial outright: the code, detail and source a blocked dial records."""

    code: str
    detail: str
    source: str
    verified: bool


@dataclass(frozen=True)
class Amendment:
    """Keys of a state rule that change from `effective` on (as in the data file)."""

    effective: date
    values: dict[str, Any]


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
    effective: date | None = None
    amendments: tuple[Amendment, ...] = ()
    ai_voice_sales: AiVoiceSales | None = None

    def on(self, day: date) -> StateRule | None:
        """This rule as in force on `day`: None before it takes effect, amendments applied."""
        if self.effective is not None and day < self.effective:
            return None
        rule = self
        for amendment in self.amendments:
            if amendment.effective <= day:
                rule = replace(rule, **amendment.values)
        return rule

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

    def rule_for(self, state: str | None, day: date) -> StateRule | None:
        """The state's rule in force on `day` (the lead's local date), if it has one."""
        rule = self.states.get(state) if state else None
        return rule.on(day) if rule is not None else None

    def ai_voice_sales_block(
        self, state: str | None, day: date, *, sales: bool, acknowledged: Collection[str] = ()
    ) -> RuleBlock | None:
        """Whether an artificial-voice campaign may not dial into `state` at all: only sales
        campaigns, only where the state restricts them, unless the campaign's operator has
        acknowledged that state (the campaign setting lists the acknowledged states)."""
        rule = self.rule_for(state, day)
        restriction = rule.ai_voice_sales if rule is not None else None
        if not sales or restriction is None or not restriction.blocked:
            return None
        assert rule is not None
        if rule.state in {s.upper() for s in acknowledged}:
            return None
        return RuleBlock(
            "state_ai_voice_sales",
            f"{rule.state}: artificial-voice sales calls are restricted; dialing needs the "
            f"operator's acknowledgement of {rule.state} in the campaign settings",
            restriction.source, restriction.verified)

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
    values = _rule_values(raw, where, problems)
    if "hours" not in raw:
        problems.append((f"{where}.hours", "every rule needs its hours [\"HH:MM\", \"HH:MM\"]"))
    if not raw.get("source"):
        problems.append((f"{where}.source", "every rule needs its source"))
    effective = _date(raw, "effective", where, problems)
    amendments = _amendments(raw.get("amendments", []), f"{where}.amendments", effective,
                             problems)
    ai_voice = _ai_voice(raw["ai_voice_sales"], f"{where}.ai_voice_sales",
                         problems) if "ai_voice_sales" in raw else None
    if len(problems) > before or values.get("hours") is None:
        return None
    return StateRule(code, effective=effective, amendments=amendments, ai_voice_sales=ai_voice,
                     **values)


def _rule_values(raw: dict[str, Any], where: str,
                 problems: list[tuple[str, str]]) -> dict[str, Any]:
    """The rule keys present in `raw`, parsed (hours as TimeRange, the scope as HolidayScope)."""
    values: dict[str, Any] = {}
    for key in ("hours", "saturday_hours", "sunday_hours"):
        if key in raw:
            values[key] = _range(raw[key], f"{where}.{key}", problems)
    if "max_calls_per_24h" in raw:
        cap = raw["max_calls_per_24h"]
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            problems.append((f"{where}.max_calls_per_24h",
                             f"expected a positive integer, got {cap!r}"))
        values["max_calls_per_24h"] = cap
    if "no_holidays" in raw:
        try:
            values["no_holidays"] = HolidayScope(raw["no_holidays"])
        except ValueError:
            problems.append((f"{where}.no_holidays", "expected none, federal or federal+state"))
    for flag in ("no_sunday", "verified"):
        if flag in raw:
            if not isinstance(raw[flag], bool):
                problems.append((f"{where}.{flag}", "expected true or false"))
            values[flag] = raw[flag] is True
    for text in ("source", "note"):
        if text in raw:
            values[text] = str(raw[text])
    return values


def _date(raw: dict[str, Any], key: str, where: str,
          problems: list[tuple[str, str]]) -> date | None:
    value = raw.get(key)
    if value is not None and not (isinstance(value, date) and not isinstance(value, datetime)):
        problems.append((f"{where}.{key}", f"expected a TOML date (YYYY-MM-DD), got {value!r}"))
        return None
    return value


def _amendments(raw: object, where: str, effective: date | None,
                problems: list[tuple[str, str]]) -> tuple[Amendment, ...]:
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        problems.append((where, "expected [[...amendments]] tables"))
        return ()
    out: list[Amendment] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        unknown = set(item) - _AMENDMENT_KEYS
        if unknown:
            problems.append((at, f"unknown key(s): {', '.join(sorted(unknown))}"))
        day = _date(item, "effective", at, problems)
        if day is None:
            problems.append((f"{at}.effective", "every amendment needs the date it takes effect"))
            continue
        if not item.get("source"):
            problems.append((f"{at}.source", "every amendment needs its source"))
        previous = out[-1].effective if out else effective
        if previous is not None and day <= previous:
            problems.append((f"{at}.effective", "amendments must follow the rule's date and "
                                                 "each other in time"))
        out.append(Amendment(day, _rule_values(item, at, problems)))
    return tuple(out)


def _ai_voice(raw: object, where: str, problems: list[tuple[str, str]]) -> AiVoiceSales | None:
    if not isinstance(raw, dict):
        problems.append((where, "expected a table (blocked, verified, source, note)"))
        return None
    unknown = set(raw) - _AI_VOICE_KEYS
    if unknown:
        problems.append((where, f"unknown key(s): {', '.join(sorted(unknown))}"))
    if not isinstance(raw.get("blocked"), bool):
        problems.append((f"{where}.blocked", "expected true or false"))
    if not raw.get("source"):
        problems.append((f"{where}.source", "every restriction needs its source"))
    return AiVoiceSales(raw.get("blocked") is True, raw.get("verified", False) is True,
                        str(raw.get("source", "")), str(raw.get("note", "")))
