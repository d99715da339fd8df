"""Per-call meters and the cost accumulator: usage in, live cost and ledger rows out.

One `CallMeter` per call, owned by that call (not thread-safe; call it from the event loop). It
prices with the book in force when the call started, keeps a running quantity per ledger line
(service, provider, tier, unit), and:

- `snapshot()` gives the live cost (for `cost.update` events and metrics);
- `flush()` gives the ledger rows (`CostRecorded`) for what was used since the last flush, to
  hand to the write-behind queue. Each row's amount is the difference between two running totals
  rounded once (see reautod.cost.money), so a call's rows add up to its total exactly. Row ids are
  derived from the call id and the line, so a replayed row changes nothing.

Telephony lines are priced by Twilio's billing rounding (per started minute): while the call
runs the meter bills the minutes started so far, and the final duration from Twilio's status
callback (`telephony_final`) tops it up. A line only ever grows, so rows are never negative.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from reautod.cost.money import to_micros
from reautod.cost.pricebook import Direction, LocalEngine, PriceBook
from reautod.errors import ValidationError
from reautod.store.enums import CostService, CostUnit, VoiceTier
from reautod.store.records import CostRecorded
from reautod.store.repositories.costs import TWILIO_VOICE_PROVIDER

_ROW_NAMESPACE = uuid.UUID("6f1d3c2a-93a4-4c55-9d61-3b0f0d7c51e2")

LOCAL = "local"


@dataclass(frozen=True)
class LineKey:
    service: CostService
    provider: str
    tier: str
    unit: CostUnit

    def label(self) -> str:
        return f"{self.service.value}/{self.provider}/{self.tier}/{self.unit.value}"


@dataclass
class _Line:
    unit_price_micros: Decimal
    quantity: Decimal = Decimal(0)
    flushed_quantity: Decimal = Decimal(0)
    flushed_micros: int = 0
    rows: int = 0

    @property
    def micros(self) -> int:
        return to_micros(self.quantity * self.unit_price_micros)


@dataclass
class Usage:
    """The raw meters of one call."""

    stt_audio_s: float = 0.0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    tts_characters: dict[str, int] = field(default_factory=dict)  # by tier
    tts_audio_s: dict[str, float] = field(default_factory=dict)  # by tier
    telephony_s: float = 0.0


@dataclass(frozen=True)
class CostSnapshot:
    """A call's cost so far, in micro-dollars (the payload of `cost.update`)."""

    call_id: uuid.UUID
    campaign_id: uuid.UUID | None
    total_micros: int
    premium_micros: int
    by_service: dict[str, int]
    stt_audio_s: float
    llm_prompt_tokens: int
    llm_completion_tokens: int
    tts_characters: dict[str, int]
    tts_audio_s: dict[str, float]
    telephony_s: float
    price_book: str


class CallMeter:
    """Meters one call and prices it; see the module docstring."""

    def __init__(self, book: PriceBook, call_id: uuid.UUID, campaign_id: uuid.UUID | None, *,
                 direction: Direction = "outbound") -> None:
        self.book = book
        self.call_id = call_id
        self.campaign_id = campaign_id
        self.direction = direction
        self.usage = Usage()
        self._lines: dict[LineKey, _Line] = {}

    # --- metering: what the pipeline and telephony report ---

    def stt(self, audio_s: float, compute_s: float) -> None:
        """One transcription: audio length, and local compute time (queue wait excluded)."""
        self.usage.stt_audio_s += _nonnegative("audio_s", audio_s)
        self._local(CostService.STT, "stt", compute_s)

    def llm(self, prompt_tokens: int, completion_tokens: int, compute_s: float) -> None:
        """One local LLM reply."""
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValidationError("token counts must be >= 0")
        self.usage.llm_prompt_tokens += prompt_tokens
        self.usage.llm_completion_tokens += completion_tokens
        self._local(CostService.LLM, "llm", compute_s)

    def tts_local(self, characters: int, audio_s: float, compute_s: float) -> None:
        """Speech from the local voice (Piper)."""
        self._tts_usage(VoiceTier.LOCAL, characters, audio_s)
        self._local(CostService.TTS, "tts", compute_s)

    def tts_premium(self, characters: int, audio_s: float, *, plan: str, model: str) -> None:
        """Characters sent to ElevenLabs (billed whether or not the audio was heard)."""
        self._tts_usage(VoiceTier.PREMIUM, characters, audio_s)
        key = LineKey(CostService.TTS, f"elevenlabs/{model}", VoiceTier.PREMIUM.value,
                      CostUnit.CHARACTERS)
        self._add(key, self.book.elevenlabs_char(plan, model), Decimal(characters))

    def telephony(self, elapsed_s: float, *, media_stream: bool = True) -> None:
        """The call has been connected for `elapsed_s`: bill the minutes started so far."""
        self.usage.telephony_s = max(self.usage.telephony_s, _nonnegative("elapsed_s", elapsed_s))
        minutes = self.book.billed_minutes(self.usage.telephony_s)
        self._raise(LineKey(CostService.TELEPHONY, TWILIO_VOICE_PROVIDER, self.direction, CostUnit.MINUTES),
                    self.book.voice_minute(self.direction), minutes)
        if media_stream:
            self._raise(LineKey(CostService.TELEPHONY, "twilio_media_stream", self.direction,
                                CostUnit.MINUTES),
                        self.book.twilio.media_stream_per_minute.micros, minutes)

    def telephony_final(self, duration_s: float, *, media_stream: bool = True) -> None:
        """Twilio's final CallDuration (0 for unanswered calls, which cost nothing)."""
        self.telephony(duration_s, media_stream=media_stream)

    def amd(self) -> None:
        """Answering-machine detection ran on this call (billed once per call)."""
        key = LineKey(CostService.AMD, TWILIO_VOICE_PROVIDER, self.direction, CostUnit.REQUESTS)
        self._raise(key, self.book.twilio.amd_per_call.micros, Decimal(1))

    def recording(self, duration_s: float) -> None:
        """A Twilio recording of `duration_s` (per started minute)."""
        key = LineKey(CostService.RECORDING, TWILIO_VOICE_PROVIDER, self.direction, CostUnit.MINUTES)
        self._raise(key, self.book.twilio.recording_per_minute.micros,
                    self.book.billed_minutes(duration_s))

    # --- results ---

    @property
    def total_micros(self) -> int:
        return sum(line.micros for line in self._lines.values())

    def snapshot(self) -> CostSnapshot:
        by_service: dict[str, int] = {}
        premium = 0
        for key, line in self._lines.items():
            by_service[key.service.value] = by_service.get(key.service.value, 0) + line.micros
            if key.tier == VoiceTier.PREMIUM.value:
                premium += line.micros
        u = self.usage
        return CostSnapshot(
            call_id=self.call_id, campaign_id=self.campaign_id, total_micros=self.total_micros,
            premium_micros=premium, by_service=by_service, stt_audio_s=round(u.stt_audio_s, 3),
            llm_prompt_tokens=u.llm_prompt_tokens, llm_completion_tokens=u.llm_completion_tokens,
            tts_characters=dict(u.tts_characters),
            tts_audio_s={k: round(v, 3) for k, v in u.tts_audio_s.items()},
            telephony_s=round(u.telephony_s, 3), price_book=self.book.version,
        )

    def flush(self, now: datetime) -> list[CostRecorded]:
        """Ledger rows for everything metered since the last flush (possibly none)."""
        rows = []
        for key, line in self._lines.items():
            quantity = line.quantity - line.flushed_quantity
            if quantity <= 0:
                continue
            amount = line.micros - line.flushed_micros
            rows.append(CostRecorded(
                event_id=uuid.uuid5(_ROW_NAMESPACE, f"{self.call_id}:{key.label()}:{line.rows}"),
                service=key.service, provider=key.provider, unit=key.unit, quantity=quantity,
                unit_price_micros=line.unit_price_micros, amount_micros=amount, occurred_at=now,
                call_id=self.call_id, campaign_id=self.campaign_id, tier=key.tier,
            ))
            line.flushed_quantity = line.quantity
            line.flushed_micros += amount
            line.rows += 1
        return rows

    # --- internals ---

    def _tts_usage(self, tier: VoiceTier, characters: int, audio_s: float) -> None:
        if characters < 0:
            raise ValidationError("characters must be >= 0")
        u = self.usage
        u.tts_characters[tier.value] = u.tts_characters.get(tier.value, 0) + characters
        u.tts_audio_s[tier.value] = u.tts_audio_s.get(tier.value, 0.0) + _nonnegative(
            "audio_s", audio_s)

    def _local(self, service: CostService, engine: LocalEngine, compute_s: float) -> None:
        key = LineKey(service, LOCAL, VoiceTier.LOCAL.value if service is CostService.TTS
                      else LOCAL, CostUnit.SECONDS)
        seconds = Decimal(str(round(_nonnegative("compute_s", compute_s), 6)))
        self._add(key, self.book.local_second(engine), seconds)

    def _line(self, key: LineKey, price: Decimal) -> _Line:
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line(price)
        return line

    def _add(self, key: LineKey, price: Decimal, quantity: Decimal) -> None:
        self._line(key, price).quantity += quantity

    def _raise(self, key: LineKey, price: Decimal, quantity: Decimal) -> None:
        line = self._line(key, price)
        line.quantity = max(line.quantity, quantity)


def _nonnegative(name: str, value: float) -> float:
    if not value >= 0:  # also refuses NaN
        raise ValidationError(f"{name} must be >= 0, got {value!r}")
    return float(value)
