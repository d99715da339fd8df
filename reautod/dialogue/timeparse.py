"""Days and times as callers say them, resolved on the lead's own clock (dateparser).

dateparser resolves the words ("tuesday", "next week", "tomorrow morning", "in two hours");
three things it gets wrong on speech are fixed here first:
- number words: "three thirty" -> "3:30", "at three" -> "at 3";
- a bare hour ("at 3"): read as a business hour, so 1-7 are afternoon and 8-11 morning;
- "the 9th": the next 9th of a month, not September.
A match counts only if it names a day or a time ("we" and "10 years ago" are not requests),
and a time in the past is moved forward (PREFER_DATES_FROM future). The result says whether the
caller gave a day, an exact time, or a part of the day, so the agent can ask for what is missing.

The first parse loads dateparser's language data (~0.1 s): call `warm_up()` at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import dateparser
from dateparser.search import search_dates

from reautod.dialogue.numbers import words_to_numbers

PartOfDay = Literal["morning", "afternoon", "evening"]
PARTS: dict[PartOfDay, tuple[time, time]] = {
    "morning": (time(8, 0), time(12, 0)),
    "afternoon": (time(12, 0), time(17, 0)),
    "evening": (time(17, 0), time(21, 0)),
}
_SETTINGS = {"PREFER_DATES_FROM": "future", "RETURN_AS_TIMEZONE_AWARE": False,
             "PREFER_DAY_OF_MONTH": "first"}

_HOUR_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
               "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_MINUTE_WORDS = {"fifteen": 15, "thirty": 30, "forty five": 45, "forty-five": 45, "oh five": 5,
                 "ten": 10, "twenty": 20, "forty": 40, "fifty": 50}
_HW = "|".join(_HOUR_WORDS)
_MW = "|".join(sorted(_MINUTE_WORDS, key=len, reverse=True))
_WORD_TIME = re.compile(rf"\b({_HW})\s+({_MW})\b")
# "around four hundred thousand" is an amount, not an hour.
_AMOUNT = r"(?!\s*(?:hundred|thousand|million|grand|dollars?|bucks|percent|k)\b)"
_WORD_HOUR = re.compile(rf"\b(at|around|by|after|before)\s+({_HW})\b{_AMOUNT}")
_IN_WORDS = re.compile(r"\bin (?:an? |one )(minute|hour|day|week)\b")
_OCLOCK = re.compile(r"\b(\d{1,2})\s*o'?\s*clock\b")
_HALF_PAST = re.compile(rf"\bhalf past\s+({_HW}|\d{{1,2}})\b")
_QUARTER = re.compile(rf"\bquarter (past|to)\s+({_HW}|\d{{1,2}})\b")
_BARE_HOUR = re.compile(r"\b(at|around|by)\s+(\d{1,2})(?::(\d{2}))?\b(?!\s*(?:am|pm|a\.m|p\.m|:))"
                        + _AMOUNT)
_SPACED_TIME = re.compile(r"\b(\d{1,2})\s+(\d{2})\s*(am|pm)\b")
_ORDINAL = re.compile(r"\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\b(?!\s+of\b)")
_DAY_WORDS = re.compile(
    r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues?|wed|thu|thurs?|"
    r"fri|sat|sun)\b|\b(today|tomorrow|tonight|weekend|"
    r"week|month|jan(uary)?|feb(ruary)?|march|april|may|june|july|aug(ust)?|sep(tember)?|"
    r"oct(ober)?|nov(ember)?|dec(ember)?)\b|\bin \d+ (minutes?|hours?|days?|weeks?)\b")
_WEEKDAY = re.compile(r"\b(mon|tue|wed|thu|fri|sat|sun)")
_TIME_WORDS = re.compile(r"\b\d{1,2}(:\d{2})?\s*(am|pm)\b|\b\d{1,2}:\d{2}\b|\bnoon\b|\bmidnight\b|"
                         r"\bin \d+ (minutes?|hours?)\b")
_PART_WORDS = re.compile(r"\b(morning|afternoon|evening|tonight|lunch ?time)\b")
_REJECT = re.compile(r"\b(ago|years?|last)\b")


@dataclass(frozen=True)
class TimeMention:
    """A day and/or time the caller named, on their clock (`local` is aware, in their zone)."""

    local: datetime
    has_day: bool  # a day was named (or implied by a relative time: "in two hours")
    has_time: bool  # an exact time of day was named
    part_of_day: PartOfDay | None  # "tomorrow morning"
    text: str  # the words that were read

    def day(self) -> date:
        return self.local.date()


def warm_up() -> None:
    """Load dateparser's data now rather than in the first call's first turn (blocking)."""
    find_time("tomorrow at 3 pm", "UTC", datetime(2026, 1, 1, 12, 0, tzinfo=ZoneInfo("UTC")))


def _hour(token: str) -> int:
    return _HOUR_WORDS[token] if token in _HOUR_WORDS else int(token)


def _business_hour(hour: int, minute: int = 0, later: bool = False) -> str:
    """A bare hour as a business hour: 1-7 pm, 8-11 am, 12 noon; all pm when the caller said
    afternoon, evening or tonight (`later`)."""
    if hour == 0 or hour > 12:
        return f"{hour}:{minute:02d}"
    suffix = "pm" if hour <= 7 or hour == 12 or later else "am"
    return f"{hour}:{minute:02d} {suffix}"


def normalize(text: str, today: date) -> str:
    """Speech made readable for dateparser (see the module docstring)."""
    s = " " + text.lower().replace("’", "'") + " "
    later = re.search(r"\b(tonight|evening|afternoon)\b", s) is not None

    def hour_of(h: int, m: int = 0) -> str:
        return _business_hour(h, m, later)

    s = re.sub(r"\ba\.?m\.?\b", "am", s)
    s = re.sub(r"\bp\.?m\.?\b", "pm", s)
    s = re.sub(r"\b(\d{1,2})(am|pm)\b", r"\1 \2", s)
    s = _HALF_PAST.sub(lambda m: hour_of(_hour(m.group(1)), 30), s)
    s = _QUARTER.sub(lambda m: (hour_of(_hour(m.group(2)), 15) if m.group(1) == "past"
                                else hour_of((_hour(m.group(2)) - 2) % 12 + 1, 45)), s)
    s = _WORD_TIME.sub(lambda m: hour_of(_HOUR_WORDS[m.group(1)], _MINUTE_WORDS[m.group(2)]), s)
    s = _IN_WORDS.sub(lambda m: f"in 1 {m.group(1)}", s)
    s = re.sub(r"\bin (\w+(?: \w+)?) (minutes|hours|days|weeks)\b",
               lambda m: f"in {words_to_numbers(m.group(1))} {m.group(2)}", s)
    s = _WORD_HOUR.sub(lambda m: f"{m.group(1)} {_HOUR_WORDS[m.group(2)]}", s)
    s = _OCLOCK.sub(lambda m: f"at {m.group(1)}", s)
    s = re.sub(r"\bat at\b", "at", s)
    s = _SPACED_TIME.sub(lambda m: f"{m.group(1)}:{m.group(2)} {m.group(3)}", s)
    s = _BARE_HOUR.sub(lambda m: f"{m.group(1)} {hour_of(int(m.group(2)), int(m.group(3) or 0))}", s)
    s = re.sub(r"\bnoon\b", "12:00 pm", s)
    s = re.sub(r"\blunch ?time\b", "12:00 pm", s)

    def ordinal(m: re.Match[str]) -> str:
        day = int(m.group(1))
        if not 1 <= day <= 31:
            return m.group(0)
        first = today.replace(day=1)
        for months in range(3):  # this month if still ahead, else the next with that day
            month_start = (first + timedelta(days=32 * months)).replace(day=1)
            try:
                candidate = month_start.replace(day=day)
            except ValueError:
                continue
            if candidate >= today:
                return candidate.strftime("%B %d").lower()
        return m.group(0)

    s = _ORDINAL.sub(ordinal, s)
    return " ".join(s.split())


def find_time(text: str, timezone: str, now: datetime) -> TimeMention | None:
    """The day/time `text` asks for, on the clock of `timezone`, or None (blocking: ~1-2 ms)."""
    zone = ZoneInfo(timezone)
    local_now = now.astimezone(zone)
    words = normalize(text, local_now.date())
    if not (_DAY_WORDS.search(words) or _TIME_WORDS.search(words) or _PART_WORDS.search(words)):
        return None
    settings = dict(_SETTINGS, RELATIVE_BASE=local_now.replace(tzinfo=None, microsecond=0))
    found = search_dates(words, languages=["en"], settings=settings) or []
    if not found and (clock := _TIME_WORDS.search(words)) is not None:
        # search_dates misses a time said alone ("4 pm"); parse the time itself.
        value = dateparser.parse(clock.group(0), languages=["en"], settings=settings)
        found = [(clock.group(0), value)] if value is not None else []
    for matched, value in found:
        if _REJECT.search(matched) or not (_DAY_WORDS.search(matched) or _TIME_WORDS.search(matched)
                                           or _PART_WORDS.search(matched)):
            continue
        part = _part_of_day(matched)
        has_time = bool(_TIME_WORDS.search(matched))
        has_day = bool(_DAY_WORDS.search(matched)) or has_time
        local = value.replace(tzinfo=zone)
        if "next week" in matched and not _WEEKDAY.search(matched):
            local -= timedelta(days=local.weekday())  # "next week": from its Monday
        if not has_time and part is None:
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if local < local_now and has_time and not _DAY_WORDS.search(matched):
            local += timedelta(days=1)  # "at 9 am" said at noon: tomorrow
        return TimeMention(local, has_day or part is not None, has_time, part, matched)
    return None


def _part_of_day(words: str) -> PartOfDay | None:
    m = _PART_WORDS.search(words)
    if m is None:
        return None
    word = m.group(1)
    if word == "tonight":
        return "evening"
    if word.startswith("lunch"):
        return None
    return word  # type: ignore[return-value]


def spoken(at: datetime, *, with_date: bool = True) -> str:
    """How the agent says a time: "Tuesday, December 15 at 3 PM" (minutes only when not :00)."""
    clock = at.strftime("%-I:%M %p") if at.minute else at.strftime("%-I %p")
    if not with_date:
        return clock
    return f"{at.strftime('%A, %B')} {at.day} at {clock}"
