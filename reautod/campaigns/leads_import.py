"""CSV lead import: typed rows for the store, and a report of every row that was refused.

A broken file (not UTF-8, not CSV, a required column missing, too large) raises ImportFileError
and yields nothing, so nothing is half-imported. A bad row is reported with its line number and
reason and left out; the good rows go to the store in one transaction (the caller's job).

Phones become E.164 with phonenumbers (default region configurable). The time zone comes from
the row, or from the number when phonenumbers maps it to exactly one zone; a number that maps to
several zones and has none in the row is imported as not dialable and reported, because the
calling window cannot be evaluated without it.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Protocol
from zoneinfo import available_timezones

import phonenumbers
from phonenumbers import timezone as number_timezone

from reautod.errors import ValidationError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
MAX_NAME_CHARS = 200
MAX_FIELD_CHARS = 2_000

# Accepted spellings of each known column (compared lower-case, with spaces/dashes as _).
COLUMNS: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "phone_number", "number", "mobile", "telephone"),
    "name": ("name", "full_name", "lead_name", "contact_name"),
    "timezone": ("timezone", "time_zone", "tz"),
    "state": ("state", "region", "us_state"),
    "email": ("email", "e_mail", "email_address"),
}
REQUIRED = ("phone", "name")

US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA",
    "kansas": "KS", "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD",
    "massachusetts": "MA", "michigan": "MI", "minnesota": "MN", "mississippi": "MS",
    "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV", "new hampshire": "NH",
    "new jersey": "NJ", "new mexico": "NM", "new york": "NY", "north carolina": "NC",
    "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA",
    "rhode island": "RI", "south carolina": "SC", "south dakota": "SD", "tennessee": "TN",
    "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA", "washington": "WA",
    "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "washington d.c.": "DC",
    "district of columbia": "DC", "puerto rico": "PR",
}
_STATE_CODES = frozenset(US_STATES.values())
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ImportFileError(ValidationError):
    """The file as a whole cannot be imported; nothing was imported."""

    code = "import_file_invalid"


class RowProblem(StrEnum):
    BAD_PHONE = "bad_phone"
    MISSING_PHONE = "missing_phone"
    MISSING_NAME = "missing_name"
    BAD_NAME = "bad_name"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    AMBIGUOUS_TIMEZONE = "ambiguous_timezone"  # imported, not dialable
    BAD_STATE = "bad_state"
    BAD_EMAIL = "bad_email"
    DUPLICATE = "duplicate"
    WRONG_COLUMN_COUNT = "wrong_column_count"
    FIELD_TOO_LONG = "field_too_long"


@dataclass(frozen=True)
class RowIssue:
    line: int  # 1-based line in the file where the row starts (the header is line 1)
    problem: RowProblem
    reason: str
    imported: bool = False  # True for warnings about rows that were still imported


@dataclass(frozen=True)
class LeadRow:
    """A validated lead, ready for the store."""

    line: int
    phone: str  # E.164
    name: str
    timezone: str | None
    state: str | None  # two-letter US code, from the row or derived from the number
    email: str | None
    dialable: bool
    timezone_source: str  # "row" | "number" | "none"
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportReport:
    rows: list[LeadRow] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    total_rows: int = 0

    @property
    def rejected(self) -> list[RowIssue]:
        return [i for i in self.issues if not i.imported]

    def summary(self) -> dict[str, int]:
        counts = {"rows": self.total_rows, "imported": len(self.rows),
                  "rejected": len(self.rejected),
                  "not_dialable": sum(not r.dialable for r in self.rows)}
        for issue in self.issues:
            counts[issue.problem.value] = counts.get(issue.problem.value, 0) + 1
        return counts


def import_csv(
    data: bytes,
    *,
    default_region: str = "US",
    existing_phones: Collection[str] = (),
    max_rows: int = MAX_ROWS,
) -> ImportReport:
    """Validate a CSV file's bytes; raise ImportFileError if the file itself is unusable."""
    region = default_region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(f"unknown default region {default_region!r} (use e.g. US, GB)")
    text = _decode(data)
    header, mapping, reader = _open(text)
    report = ImportReport()
    seen: dict[str, int] = {}
    existing = set(existing_phones)
    zones = _zones()
    for line, values in _records(reader):
        report.total_rows += 1
        if report.total_rows > max_rows:
            raise ImportFileError(f"more than {max_rows} rows; split the file")
        if len(values) != len(header):
            report.issues.append(RowIssue(line, RowProblem.WRONG_COLUMN_COUNT,
                                          f"expected {len(header)} columns, found {len(values)}"))
            continue
        row = {name: value.strip() for name, value in zip(header, values, strict=True)}
        issue = _too_long(line, row)
        if issue is not None:
            report.issues.append(issue)
            continue
        lead = _validate(line, row, mapping, region, zones, report)
        if lead is None:
            continue
        if lead.phone in existing:
            report.issues.append(RowIssue(line, RowProblem.DUPLICATE,
                                          "phone already a lead in this campaign"))
            continue
        if lead.phone in seen:
            report.issues.append(RowIssue(line, RowProblem.DUPLICATE,
                                          f"same phone as line {seen[lead.phone]}"))
            continue
        seen[lead.phone] = line
        report.rows.append(lead)
    return report


def _decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(f"file is over {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if not data.strip():
        raise ImportFileError("file is empty")
    if b"\x00" in data:
        raise ImportFileError("file contains NUL bytes: not a CSV text file (UTF-16 or binary?)")
    try:
        return data.decode("utf-8-sig")  # strips a BOM
    except UnicodeDecodeError as err:
        raise ImportFileError(
            f"file is not UTF-8 (bad byte at offset {err.start}); save it as UTF-8 CSV"
        ) from err


def _open(text: str) -> tuple[list[str], dict[str, str], _LineReader]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as err:
        raise ImportFileError(f"not a readable CSV header: {err}") from err
    names = [_column_key(h) for h in header]
    if len(set(names)) != len(names):
        raise ImportFileError("the header repeats a column name")
    mapping: dict[str, str] = {}
    for known, spellings in COLUMNS.items():
        for name in names:
            if name in spellings:
                mapping[known] = name
                break
    missing = [c for c in REQUIRED if c not in mapping]
    if missing:
        raise ImportFileError(
            f"required column(s) missing from the header: {', '.join(missing)} "
            f"(found: {', '.join(h.strip() for h in header) or 'nothing'})"
        )
    return names, mapping, reader


class _LineReader(Protocol):
    """What we use of csv.reader: the next record and the physical line reached."""

    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...


def _records(reader: _LineReader) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on (quoted fields may span lines)."""
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise ImportFileError(
                f"line {start}: not valid CSV ({err}); nothing was imported"
            ) from err
        if values and any(v.strip() for v in values):
            yield start, values


def _column_key(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def _too_long(line: int, row: dict[str, str]) -> RowIssue | None:
    for name, value in row.items():
        if len(value) > MAX_FIELD_CHARS:
            return RowIssue(line, RowProblem.FIELD_TOO_LONG,
                            f"column {name!r} is over {MAX_FIELD_CHARS} characters")
    return None


def _validate(
    line: int, row: dict[str, str], mapping: dict[str, str], region: str,
    zones: frozenset[str], report: ImportReport,
) -> LeadRow | None:
    def col(known: str) -> str:
        return row.get(mapping[known], "") if known in mapping else ""

    def reject(problem: RowProblem, reason: str) -> None:
        report.issues.append(RowIssue(line, problem, reason))

    raw_phone, name = col("phone"), " ".join(col("name").split())
    if not raw_phone:
        reject(RowProblem.MISSING_PHONE, "phone is empty")
        return None
    if not name:
        reject(RowProblem.MISSING_NAME, "name is empty")
        return None
    if len(name) > MAX_NAME_CHARS or any(unicodedata.category(c) == "Cc" for c in name):
        reject(RowProblem.BAD_NAME, f"name has control characters or is over {MAX_NAME_CHARS}")
        return None
    try:
        number = phonenumbers.parse(raw_phone, region)
    except phonenumbers.NumberParseException as err:
        reject(RowProblem.BAD_PHONE, f"{raw_phone!r} is not a phone number ({err.args[0]})")
        return None
    if not phonenumbers.is_valid_number(number):
        reject(RowProblem.BAD_PHONE, f"{raw_phone!r} is not a valid number (region {region})")
        return None
    phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    email = col("email") or None
    if email is not None and not _EMAIL.match(email):
        reject(RowProblem.BAD_EMAIL, f"{email!r} is not an email address")
        return None

    raw_state = col("state")
    state: str | None = None
    if raw_state:
        state = _state_code(raw_state)
        if state is None:
            reject(RowProblem.BAD_STATE, f"{raw_state!r} is not a US state or its code")
            return None
    else:
        state = state_of_number(number)

    raw_tz = col("timezone")
    dialable = True
    if raw_tz:
        if raw_tz not in zones:
            reject(RowProblem.UNKNOWN_TIMEZONE, f"{raw_tz!r} is not an IANA time zone")
            return None
        tz: str | None = raw_tz
        source = "row"
    else:
        candidates = [z for z in number_timezone.time_zones_for_number(number)
                      if z in zones]
        if len(candidates) == 1:
            tz, source = candidates[0], "number"
        else:
            tz, source, dialable = None, "none", False
            report.issues.append(RowIssue(
                line, RowProblem.AMBIGUOUS_TIMEZONE,
                "no timezone column and the number maps to "
                f"{len(candidates) or 'no'} time zones: imported, not dialable until one is set",
                imported=True,
            ))
    known = set(mapping.values())
    attributes = {k: v for k, v in row.items() if k not in known and v}
    return LeadRow(line, phone, name, tz, state, email, dialable, source, attributes)


def state_of_number(number: phonenumbers.PhoneNumber) -> str | None:
    """The US state a number's area code belongs to (None outside the US or when unknown)."""
    if phonenumbers.region_code_for_number(number) != "US":
        return None
    # imported on first use: loading the geocoder's data takes seconds
    from phonenumbers import geocoder

    return _state_code(geocoder.description_for_number(number, "en").split(",")[-1])


def _state_code(value: str) -> str | None:
    cleaned = " ".join(value.strip().split())
    if cleaned.upper() in _STATE_CODES:
        return cleaned.upper()
    return US_STATES.get(cleaned.lower())


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    # available_timezones() walks the tz database on disk: once per process is enough.
    return frozenset(available_timezones())
