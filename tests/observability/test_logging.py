"""Logging: phone numbers masked at INFO and above, structured journald fields, the right sink."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from reautod.observability.logging import (
    CallbackHandler,
    RedactFilter,
    mask_name,
    mask_phone,
    running_under_systemd,
    setup_logging,
)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RedactFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, Capture]]:
    logger = logging.getLogger("reautod.test.logging")
    handler = Capture()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


def test_masks() -> None:
    assert mask_phone("+14155550123") == "+1******0123"
    assert mask_phone(None) == "-"
    assert mask_name("Jane Doe") == "J*** D**"


@pytest.mark.parametrize(
    "number", ["+14155550123", "(415) 555-0123", "415-555-0123", "+1 415 555 0123", "+442071838750"]
)
def test_phone_numbers_are_masked_at_info_and_above(captured, number: str) -> None:
    logger, handler = captured
    logger.info("dialing %s now", number)
    logger.warning("call to " + number + " failed")
    for record in handler.records:
        message = record.getMessage()
        assert number not in message
        assert message.count("*") >= 4, message


def test_debug_keeps_details_and_addresses_stay_readable(captured) -> None:
    logger, handler = captured
    logger.debug("raw %s", "+14155550123")
    logger.info("listening on 127.0.0.1:8080 pid 14768")
    assert handler.records[0].getMessage() == "raw +14155550123"
    assert handler.records[1].getMessage() == "listening on 127.0.0.1:8080 pid 14768"


def test_structured_fields_for_journald(captured) -> None:
    logger, handler = captured
    logger.info("turn stored", extra={"call_id": "abc", "campaign": "solar"})
    record = handler.records[0]
    assert record.REAUTOD_CALL_ID == "abc"  # type: ignore[attr-defined]
    assert record.REAUTOD_CAMPAIGN == "solar"  # type: ignore[attr-defined]


def test_systemd_detection_and_sink_choice() -> None:
    assert running_under_systemd({"JOURNAL_STREAM": "8:123"})
    assert running_under_systemd({"INVOCATION_ID": "x"})
    assert not running_under_systemd({})
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        handler = setup_logging("INFO", "on")
        assert type(handler).__name__ == "JournalHandler"
        handler = setup_logging("INFO", "off", debug=True)
        assert isinstance(handler, logging.StreamHandler)
        assert root.level == logging.DEBUG
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def test_warnings_are_forwarded_to_the_event_sink() -> None:
    seen: list[dict[str, str]] = []
    handler = CallbackHandler(lambda rec: seen.append(dict(rec)))
    logger = logging.getLogger("reautod.test.forward")
    logger.addHandler(handler)
    try:
        logger.info("not forwarded")
        logger.warning("disk %s", "full")
    finally:
        logger.removeHandler(handler)
    assert seen == [{"level": "WARNING", "logger": "reautod.test.forward", "message": "disk full"}]
