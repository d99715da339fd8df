"""The price book: what each unit of work costs, as validated, versioned data.

A file holds one or more books (`[[books]]`), each complete on its own, with a version, a
currency and the UTC date it takes effect; `PriceBooks.at(when)` picks the one in force. Every
price carries its source and the date it was checked. Loading validates everything and names
each problem with its path (`books[0].twilio.amd_per_call.amount: ...`), like the config does.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from reautod.cost.money import dollars_to_micros
from reautod.errors import ConfigError, ReautodError

DEFAULT_PRICE_BOOK = Path(__file__).with_name("prices.toml")
Direction = Literal["outbound", "inbound"]
LocalEngine = Literal["stt", "llm", "tts"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _money(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("write money as a decimal string (\"0.014\"), never a number")
    try:
        micros = dollars_to_micros(value)
    except ReautodError as err:
        raise ValueError(err.message) from err
    if micros < 0:
        raise ValueError("a price cannot be negative")
    return value


class SourcedPrice(_Strict):
    """One price in the book's currency, where it came from and when it was checked."""

    amount: str
    source: str = Field(min_length=3, max_length=300)
    as_of: date

    _check_amount = field_validator("amount", mode="before")(_money)

    @property
    def micros(self) -> Decimal:
        return dollars_to_micros(self.amount)


class VoicePerMinute(_Strict):
    outbound: SourcedPrice
    inbound: SourcedPrice


class TwilioPrices(_Strict):
    billing_increment_s: int = Field(60, ge=1, le=60)
    voice_per_minute: VoicePerMinute
    media_stream_per_minute: SourcedPrice
    amd_per_call: SourcedPrice
    recording_per_minute: SourcedPrice
    sms_per_segment: SourcedPrice


class ElevenLabsPlan(_Strict):
    concurrency: int = Field(ge=1, le=1000)
    per_1k_characters: dict[str, str] = Field(min_length=1)
    source: str = Field(min_length=3, max_length=300)
    as_of: date

    @field_validator("per_1k_characters")
    @classmethod
    def _prices(cls, value: dict[str, str]) -> dict[str, str]:
        for model, price in value.items():
            try:
                _money(price)
            except (ValueError, ReautodError) as err:
                raise ValueError(f"{model}: {err}") from err
        return value


class ElevenLabsPrices(_Strict):
    plans: dict[str, ElevenLabsPlan] = Field(min_length=1)


class LocalPrices(_Strict):
    stt_per_hour: SourcedPrice
    llm_per_hour: SourcedPrice
    tts_per_hour: SourcedPrice


class PriceBook(_Strict):
    """One complete set of prices in force from `effective_from` (00:00 UTC)."""

    version: str = Field(min_length=1, max_length=64)
    currency: Literal["USD"] = "USD"  # amounts are micro-dollars everywhere
    effective_from: date
    twilio: TwilioPrices
    elevenlabs: ElevenLabsPrices
    local: LocalPrices

    # --- prices per unit, in (fractional) micro-dollars ---

    def voice_minute(self, direction: Direction) -> Decimal:
        price: SourcedPrice = getattr(self.twilio.voice_per_minute, direction)
        return price.micros

    def billed_minutes(self, duration_s: float) -> Decimal:
        """Twilio's billing rounding: every started increment (a minute) counts whole; 0 s is free."""
        if duration_s <= 0:
            return Decimal(0)
        increment = self.twilio.billing_increment_s
        return Decimal(math.ceil(duration_s / increment) * increment) / 60

    def elevenlabs_char(self, plan: str, model: str) -> Decimal:
        """Micro-dollars per character of `model` on `plan` (ConfigError when not in the book)."""
        entry = self.elevenlabs.plans.get(plan)
        if entry is None:
            raise ConfigError(f"price book {self.version} has no ElevenLabs plan {plan!r}",
                              [("elevenlabs.plan", f"one of {sorted(self.elevenlabs.plans)}")])
        price = entry.per_1k_characters.get(model)
        if price is None:
            raise ConfigError(
                f"price book {self.version} has no price for {model!r} on plan {plan!r}",
                [("elevenlabs.model_id", f"one of {sorted(entry.per_1k_characters)}")])
        return dollars_to_micros(price) / 1000

    def elevenlabs_concurrency(self, plan: str) -> int:
        entry = self.elevenlabs.plans.get(plan)
        if entry is None:
            raise ConfigError(f"price book {self.version} has no ElevenLabs plan {plan!r}")
        return entry.concurrency

    def local_second(self, engine: LocalEngine) -> Decimal:
        """Micro-dollars per compute second of a local engine."""
        hourly: SourcedPrice = getattr(self.local, f"{engine}_per_hour")
        return hourly.micros / 3600


class PriceBooks(_Strict):
    """Every book of a price-book file, oldest first."""

    books: list[PriceBook] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> PriceBooks:
        versions = [b.version for b in self.books]
        if len(set(versions)) != len(versions):
            raise ValueError(f"book versions must be unique, got {versions}")
        starts = [b.effective_from for b in self.books]
        if any(later <= earlier for earlier, later in itertools.pairwise(starts)):
            raise ValueError("books must be listed oldest first, each effective_from later "
                             "than the one before")
        return self

    def at(self, when: datetime) -> PriceBook:
        """The book in force at `when` (the oldest book also covers anything before it)."""
        day = when.astimezone(UTC).date()
        current = self.books[0]
        for book in self.books[1:]:
            if book.effective_from <= day:
                current = book
        return current


def load_price_books(path: Path | None = None) -> PriceBooks:
    """Read and validate a price-book file (default: the one shipped with reautod)."""
    path = path or DEFAULT_PRICE_BOOK
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read price book {path}: {err.strerror}",
                          [("cost.price_book", str(path))]) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"price book {path} is not valid TOML: {err}",
                          [("cost.price_book", str(err))]) from err
    try:
        return PriceBooks.model_validate(raw)
    except PydanticValidationError as err:
        problems = [
            (".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"])
             .replace(".[", "["), e["msg"])
            for e in err.errors()
        ]
        raise ConfigError(f"price book {path}: {len(problems)} problem(s)", problems) from err
