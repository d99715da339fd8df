"""The `[cost]` and `[elevenlabs]` config sections, mounted into reautod.config.Settings and
defined here so the part's settings live with the part. reautod.config imports this module, so
it imports nothing of reautod (the store imports the config)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostSettings(_Section):
    price_book: Path | None = Field(
        None, description="Price-book TOML file; default: the one shipped with reautod")
    timezone: str = Field("UTC", description="IANA zone of budgets set without --timezone")
    alert_thresholds_pct: list[int] = Field(
        [50, 80, 100], min_length=1, description="Budget shares (%) that raise an alert, once "
        "per period each")
    forecast_window_s: float = Field(
        3600.0, gt=0, le=7 * 86400, description="Spend of the last this-many seconds sets the "
        "burn rate of the forecast")
    forecast_interval_s: float = Field(
        60.0, gt=0, le=3600, description="How often budgets are forecast and counters re-synced")
    reconcile_delays_s: list[float] = Field(
        [30.0, 300.0, 3600.0], min_length=1, description="After a call ends, when to ask "
        "Twilio for its price (Twilio fills it in some time after the call)")
    deal_value_usd: str = Field(
        "0", description="Default value of a won deal, for the premium-voice decision "
        "(decimal string); 0 never buys premium speech")
    premium_uplift: float = Field(
        0.0, ge=0, le=1, description="How much more likely a deal is with the premium voice "
        "(0.02 = 2 percentage points)")
    premium_chars_per_call: int = Field(
        1200, ge=1, le=100_000, description="Characters the agent is expected to speak in a "
        "call, for the premium voice's marginal cost")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "America/New_York)") from err
        return value

    @field_validator("deal_value_usd")
    @classmethod
    def _deal_value(cls, value: str) -> str:
        try:
            amount = Decimal(value.strip().removeprefix("$"))
        except InvalidOperation as err:
            raise ValueError(f"{value!r} is not an amount of dollars such as 250 or 99.50") from err
        if not amount.is_finite() or amount < 0:
            raise ValueError("the deal value must be a dollar amount >= 0")
        return value

    @field_validator("alert_thresholds_pct")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        if any(not 1 <= v <= 1000 for v in value):
            raise ValueError("thresholds are percentages between 1 and 1000")
        return sorted(set(value))

    @property
    def forecast_window(self) -> timedelta:
        return timedelta(seconds=self.forecast_window_s)


class ElevenLabsSettings(_Section):
    enabled: bool = Field(False, description="Offer the premium voice (needs the API key)")
    base_url: str = Field("https://api.elevenlabs.io", description="API base URL (tests point "
                          "it at a local stand-in)")
    plan: str = Field("creator", description="Subscription plan: its price and concurrency "
                      "limit come from the price book")
    voice_id: str = Field("21m00Tcm4TlvDq8ikWAM", min_length=1, max_length=64,
                          description="Default voice; campaigns may choose another")
    model_id: str = Field("eleven_flash_v2_5", description="Default model")
    output_format: Literal["ulaw_8000", "pcm_8000", "pcm_16000"] = Field(
        "ulaw_8000", description="ulaw_8000 goes straight into Twilio media payloads")
    stability: float = Field(0.5, ge=0, le=1, description="Voice setting: lower is more "
                             "expressive, higher more even")
    similarity_boost: float = Field(0.75, ge=0, le=1, description="Voice setting: how closely "
                                    "the speech keeps to the original voice")
    speed: float = Field(1.0, ge=0.7, le=1.2, description="Speaking rate (1.0 = the voice's own)")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Per request: connect and first byte")
    retries: int = Field(0, ge=0, le=5, description="Retries of 429/5xx/timeouts before the "
                         "utterance falls back to the local voice (each one is a pause the caller "
                         "hears; with none the local voice speaks at once)")
    breaker_failures: int = Field(5, ge=1, le=100, description="Consecutive failures that "
                                  "open the circuit (all premium speech goes local)")
    breaker_recovery_s: float = Field(30.0, gt=0, le=3600, description="How long the circuit "
                                      "stays open before one trial request")
    quota_interval_s: float = Field(300.0, gt=0, le=86400, description="How often the "
                                    "subscription's character quota is read")
    quota_reserve_chars: int = Field(5000, ge=0, description="Below this many characters left, "
                                     "premium speech stops")
