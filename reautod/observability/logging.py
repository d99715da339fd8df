"""Logging set-up for the entry points: journald with structured fields under systemd, readable
stderr lines otherwise; personal data masked at INFO and above.

Call sites pass structure with `extra={"call_id": ...}`; it becomes the journal field
`REAUTOD_CALL_ID` (and `REAUTOD_CAMPAIGN` for `campaign`). Names cannot be recognised by a pattern,
so code masks them itself with `mask_name`; phone numbers are also masked by a filter as a second
line of defence.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Literal

# E.164 (+14155550123) and North American forms ((415) 555-0123, 415-555-0123, 415 555 0123);
# deliberately not dotted digit runs, so addresses like 127.0.0.1:8080 stay readable
PHONE_PATTERN = re.compile(
    r"(?<![\w.:+])(?:\+\d{8,15}|(?:\+?1[\s-]?)?(?:\(\d{3}\)\s?|\d{3}[\s-]?)\d{3}[\s-]?\d{4})(?![\w.:])"
)
STRUCTURED_FIELDS = {"call_id": "REAUTOD_CALL_ID", "campaign": "REAUTOD_CAMPAIGN"}


def mask_phone(number: str | None) -> str:
    """'+14155550123' -> '+1******0123': enough to tell calls apart, not enough to dial."""
    if not number:
        return "-"
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    prefix = "+" + digits[0] if number.startswith("+") else ""
    hidden = len(digits) - 4 - (1 if prefix else 0)
    return f"{prefix}{'*' * hidden}{''.join(digits[-4:])}"


def mask_name(name: str | None) -> str:
    """'Jane Doe' -> 'J*** D**'."""
    if not name:
        return "-"
    return " ".join(part[0] + "*" * (len(part) - 1) for part in name.split())


class RedactFilter(logging.Filter):
    """Masks phone numbers in records at INFO and above, and adds journald structured fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        for attr, field in STRUCTURED_FIELDS.items():
            value = getattr(record, attr, None)
            if value is not None:
                setattr(record, field, str(value))
        if record.levelno >= logging.INFO:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # malformed %-args: keep the raw template
                message = str(record.msg)
            masked = PHONE_PATTERN.sub(lambda m: mask_phone(m.group(0)), message)
            record.msg, record.args = masked, ()
        return True


class CallbackHandler(logging.Handler):
    """Forwards WARNING+ records to a callable (the event bus), never raising into the caller."""

    def __init__(self, sink: Callable[[Mapping[str, str]], None]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sink(
                {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
            )
        except Exception:
            self.handleError(record)


def running_under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def setup_logging(
    level: str = "INFO",
    journald: Literal["auto", "on", "off"] = "auto",
    *,
    debug: bool = False,
) -> logging.Handler:
    """Configure the root logger once, at an entry point; returns the handler it installed."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    use_journal = journald == "on" or (journald == "auto" and running_under_systemd())
    handler: logging.Handler
    if use_journal:
        from systemd.journal import JournalHandler

        handler = JournalHandler(SYSLOG_IDENTIFIER="reautod")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else getattr(logging, level))
    # third-party chatter stays at WARNING unless debugging
    for noisy in (
        "uvicorn.access",
        "httpx",
        "httpcore",
        "websockets",
        "aiosqlite",
        "numba",
        "twilio.http_client",
    ):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
    return handler


def replace_level(level: str, *, debug: bool = False) -> None:
    """Apply a new level after a config reload."""
    logging.getLogger().setLevel(logging.DEBUG if debug else getattr(logging, level))
