"""Numbers as callers say them ("four hundred thousand", "two fifty", "$1,200", "3k")."""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1_000, "grand": 1_000, "k": 1_000, "million": 1_000_000}
NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | frozenset(_SCALES) - {"k", "grand"}
_DIGITS = re.compile(r"^\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(k|m)?$")


def words_to_numbers(text: str) -> str:
    """Number words replaced by digits, the rest kept ("at three thirty" -> "at 3 30")."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            value = _run_value(run)
            out.append(str(value) if value is not None else " ".join(run))
            run.clear()

    for word in text.split():
        bare = word.strip(".,!?").lower()
        if bare in _UNITS or bare in _TENS or bare in ("hundred", "thousand", "million") or (
                bare == "and" and run):
            run.append(bare)
            continue
        flush()
        out.append(word)
    flush()
    return " ".join(out).replace(" and ", " ")


def _run_value(words: list[str]) -> int | None:
    """A spoken number from its words; "three thirty" (a time) stays two numbers."""
    words = [w for w in words if w != "and"]
    if not words:
        return None
    total, current = 0, 0
    last_small: str | None = None
    for w in words:
        if w in _UNITS:
            if last_small is not None and last_small in _UNITS:
                return None  # "two five": digits read out, not one number
            current += _UNITS[w]
            last_small = w
        elif w in _TENS:
            if current % 100 and last_small is not None:
                return None  # "three thirty": two numbers
            current += _TENS[w]
            last_small = w
        else:
            scale = _SCALES[w]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
            last_small = None
    return total + current


_DIGIT_SCALE = re.compile(r"\b(\d+(?:\.\d+)?)\s+(hundred|thousand|grand|million)\b")


def parse_amounts(text: str) -> list[float]:
    """Every number mentioned, in order ("about 250 bucks" -> [250.0], "400 thousand" -> [400000.0])."""
    lowered = _DIGIT_SCALE.sub(lambda m: f"{float(m.group(1)) * _SCALES[m.group(2)]:.0f}",
                               text.lower().replace("-", " "))
    words = words_to_numbers(lowered).split()
    values: list[float] = []
    i = 0
    while i < len(words):
        m = _DIGITS.match(words[i].strip(".,!?"))
        if m is None:
            i += 1
            continue
        value = float(m.group(1).replace(",", "") + (f".{m.group(2)}" if m.group(2) else ""))
        if m.group(3):
            value *= 1_000 if m.group(3) == "k" else 1_000_000
        nxt = words[i + 1].strip(".,!?") if i + 1 < len(words) else ""
        if nxt in _SCALES:
            value *= _SCALES[nxt]
            i += 1
        values.append(value)
        i += 1
    return values
