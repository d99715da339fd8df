from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from reautod.cost.money import format_micros, parse_dollars, to_micros
from reautod.cost.pricebook import DEFAULT_PRICE_BOOK, load_price_books
from reautod.errors import ConfigError, ValidationError


def test_the_shipped_book_loads_and_every_price_names_its_source() -> None:
    books = load_price_books()
    book = books.at(datetime(2026, 11, 21, tzinfo=UTC))
    assert book.currency == "USD"
    assert book.voice_minute("outbound") == Decimal(14_000)
    assert book.twilio.amd_per_call.micros == Decimal(7_500)
    assert book.elevenlabs_char("pro", "eleven_flash_v2_5") == Decimal(50)
    assert book.elevenlabs_char("pro", "eleven_multilingual_v2") == Decimal(100)
    assert book.elevenlabs_concurrency("scale") == 15
    assert book.local_second("llm") == Decimal(125)  # $0.45/h: local work is never free
    prices = [book.twilio.voice_per_minute.outbound, book.twilio.voice_per_minute.inbound,
              book.twilio.media_stream_per_minute, book.twilio.amd_per_call,
              book.twilio.recording_per_minute, book.twilio.sms_per_segment,
              book.local.stt_per_hour, book.local.llm_per_hour, book.local.tts_per_hour]
    assert all(p.source and p.as_of for p in prices)
    assert all(plan.source for plan in book.elevenlabs.plans.values())


@pytest.mark.parametrize(("seconds", "minutes"), [(0, 0), (0.4, 1), (60, 1), (60.01, 2), (61, 2),
                                                  (3599, 60)])
def test_twilio_bills_every_started_minute(seconds: float, minutes: int) -> None:
    book = load_price_books().books[0]
    assert book.billed_minutes(seconds) == minutes


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_validation_names_each_problem_with_its_path(tmp_path: Path) -> None:
    shipped = DEFAULT_PRICE_BOOK.read_text()
    broken = (shipped.replace('amount = "0.0075"', "amount = 0.0075")  # a float
              .replace('amount = "0.0025"', 'amount = "-0.01"')
              .replace('eleven_turbo_v2_5 = "0.05"', 'eleven_turbo_v2_5 = "cheap"', 1))
    with pytest.raises(ConfigError) as info:
        load_price_books(write(tmp_path, broken))
    paths = dict(info.value.problems)
    assert "never a number" in paths["books[0].twilio.amd_per_call.amount"]
    assert "negative" in paths["books[0].twilio.recording_per_minute.amount"]
    assert "eleven_turbo_v2_5" in paths["books[0].elevenlabs.plans.free.per_1k_characters"]


def test_books_change_prices_on_their_effective_date(tmp_path: Path) -> None:
    shipped = DEFAULT_PRICE_BOOK.read_text()
    second = shipped[shipped.index("\n[[books]]"):].replace(
        'version = "2026-11-21"', 'version = "2027-01"').replace(
        "effective_from = 2026-11-01", "effective_from = 2027-01-01").replace(
        'amount = "0.0140"', 'amount = "0.0150"')
    books = load_price_books(write(tmp_path, shipped + "\n" + second))
    assert books.at(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)).voice_minute("outbound") == 14_000
    assert books.at(datetime(2027, 1, 1, tzinfo=UTC)).voice_minute("outbound") == 15_000
    assert books.at(datetime(2020, 1, 1, tzinfo=UTC)).version == "2026-11-21"
    with pytest.raises(ConfigError) as info:
        load_price_books(write(tmp_path, second + "\n" + shipped))
    assert "oldest first" in str(info.value.problems)
    assert books.books[1].effective_from == date(2027, 1, 1)


@pytest.mark.parametrize("text", ["version = 1 2", "[[books]]\nversion = 'x'\n"])
def test_unreadable_or_incomplete_books_are_config_errors(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_price_books(write(tmp_path, text))
    with pytest.raises(ConfigError, match="cannot read"):
        load_price_books(tmp_path / "missing.toml")


def test_unknown_plan_or_model_is_a_config_error() -> None:
    book = load_price_books().books[0]
    with pytest.raises(ConfigError, match="plan"):
        book.elevenlabs_char("enterprise-x", "eleven_flash_v2_5")
    with pytest.raises(ConfigError, match="no price"):
        book.elevenlabs_char("pro", "eleven_v9")


def test_money_is_decimal_and_rounded_half_up_once() -> None:
    assert to_micros(Decimal("0.5")) == 1 and to_micros(Decimal("0.49")) == 0
    assert parse_dollars("$12.50") == 12_500_000 and parse_dollars("1,000") == 1_000_000_000
    assert format_micros(12_345_678) == "$12.3457" and format_micros(-5) == "-$0.0000"
    for bad in ("12.1234567", "abc", "nan"):
        with pytest.raises(ValidationError):
            parse_dollars(bad)
