"""Premium text to speech: ElevenLabs, streamed, 8 kHz mu-law straight into Twilio.

`ElevenLabsTTS.stream(text, voice, call_id=...)` streams `PremiumChunk`s from ElevenLabs'
`/v1/text-to-speech/{voice}/stream/with-timestamps` (through the `elevenlabs` package): audio in
`output_format` (default `ulaw_8000`, which a Twilio media payload carries as it is) plus how many
characters of the text the audio so far covers, so a failure mid-sentence can hand exactly the
rest of the text to the local voice (reautod.engines.tiered).

- Concurrency: at most the plan's limit (from the price book) requests in flight; more wait in
  a queue for up to `timeout_s`, so we never cause a storm of 429 too_many_concurrent_requests.
- Retries (reautod.resilience.retry: tenacity with a retry budget): 429 (`too_many_concurrent_requests`, `system_busy`), 5xx, timeouts and
  connection failures, with exponential backoff and jitter, only before the first audio byte:
  once audio has been played a retry would repeat it, so a later failure goes to the fallback.
- Circuit breaker (reautod.resilience): consecutive failures open it; while open, `available()`
  is False and no request is made.
- Quota: `refresh_quota()` reads /v1/user/subscription; characters sent since are subtracted
  locally; under `quota_reserve_chars` left, `available()` is False. A `quota_exceeded` answer
  sets the quota to zero.
- Stalls: no first chunk within `timeout_s`, or no next chunk within `stall_s`, is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from elevenlabs import AsyncElevenLabs, VoiceSettings
from elevenlabs.core.api_error import ApiError

from reautod.cost.settings import ElevenLabsSettings
from reautod.engines.base import AudioChunk, AudioEncoding, EngineHealth, EngineState, RequestTiming
from reautod.engines.tts import validate_text
from reautod.errors import EngineError
from reautod.resilience.breaker import BreakerOpenError, Breakers
from reautod.resilience.retry import RetryBudget, call_with_retries
from reautod.resilience.settings import ServicePolicy

log = logging.getLogger(__name__)

BREAKER = "elevenlabs"
_FORMATS = {"ulaw_8000": (AudioEncoding.MULAW, 8000), "pcm_8000": (AudioEncoding.PCM16, 8000),
            "pcm_16000": (AudioEncoding.PCM16, 16000)}


class PremiumSpeechError(EngineError):
    """Premium speech failed; `reason` is one of the fallback reasons the metrics count."""

    code = "premium_tts_failed"

    def __init__(self, message: str, reason: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.reason = reason  # breaker_open | rate_limited | server_error | timeout | quota | failed
        self.transient = transient


@dataclass(frozen=True)
class VoiceChoice:
    """Which ElevenLabs voice speaks and how (per campaign; defaults from `[elevenlabs]`)."""

    voice_id: str
    model_id: str
    stability: float = 0.5
    similarity_boost: float = 0.75
    speed: float = 1.0

    @classmethod
    def from_settings(cls, s: ElevenLabsSettings) -> VoiceChoice:
        return cls(s.voice_id, s.model_id, s.stability, s.similarity_boost, s.speed)


@dataclass(frozen=True)
class PremiumChunk:
    audio: AudioChunk
    characters_spoken: int  # characters of the text the audio so far covers


@dataclass(frozen=True)
class Quota:
    tier: str
    character_count: int
    character_limit: int
    next_reset: datetime | None
    read_at: datetime


class ElevenLabsTTS:
    """See the module docstring. One per daemon, shared by every call."""

    def __init__(self, settings: ElevenLabsSettings, api_key: str, *, concurrency: int,
                 breakers: Breakers, stall_s: float = 2.0, backoff_s: float = 0.2) -> None:
        if not api_key:
            raise EngineError("ElevenLabs needs an API key (secrets.elevenlabs_api_key)")
        self.settings = settings
        self.encoding, self.sample_rate = _FORMATS[settings.output_format]
        self.breakers = breakers
        self.stall_s = stall_s
        self.backoff_s = backoff_s
        # the one retry policy (reautod.resilience.retry), with a retry budget: a 429 storm is
        # not multiplied by `retries`
        self._policy = ServicePolicy(failures=settings.breaker_failures,
                                     recovery_s=settings.breaker_recovery_s,
                                     retries=settings.retries, backoff_base_s=backoff_s,
                                     backoff_max_s=2.0)
        self._budget = RetryBudget(self._policy.budget_ratio, self._policy.budget_min_per_s)
        self._http = httpx.AsyncClient(timeout=settings.timeout_s)
        self._client = AsyncElevenLabs(api_key=api_key, base_url=settings.base_url,
                                       timeout=settings.timeout_s, httpx_client=self._http)
        self._slots = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self.quota: Quota | None = None
        self._chars_since_quota = 0
        self.waiting = 0
        self.in_flight = 0
        self.requests = 0
        self.failures = 0
        self.last_error = ""

    # --- availability and quota ---

    def remaining_characters(self) -> int | None:
        if self.quota is None:
            return None
        q = self.quota
        return max(0, q.character_limit - q.character_count - self._chars_since_quota)

    def available(self) -> bool:
        """Whether premium speech should be tried now (enabled, circuit closed, quota left)."""
        if not self.settings.enabled or self.breakers.state(BREAKER) == "open":
            return False
        remaining = self.remaining_characters()
        return remaining is None or remaining > self.settings.quota_reserve_chars

    async def refresh_quota(self) -> Quota:
        """Read the subscription's character quota (GET /v1/user/subscription)."""
        try:
            sub = await self._client.user.subscription.get(request_options={"max_retries": 0})
        except (ApiError, httpx.HTTPError) as err:
            raise _classify(err) from err
        reset = sub.next_character_count_reset_unix
        self.quota = Quota(tier=str(sub.tier), character_count=int(sub.character_count),
                           character_limit=int(sub.character_limit),
                           next_reset=datetime.fromtimestamp(reset, UTC) if reset else None,
                           read_at=datetime.now(UTC))
        self._chars_since_quota = 0
        return self.quota

    # --- speech ---

    async def stream(self, text: str, voice: VoiceChoice, *, call_id: str
                     ) -> AsyncIterator[PremiumChunk]:
        """Audio for `text`; PremiumSpeechError on any failure (after what was yielded)."""
        text = validate_text(text)
        if not text.strip():
            return
        if not self.available():
            reason = "breaker_open" if self.breakers.state(BREAKER) == "open" else "quota"
            raise PremiumSpeechError(f"premium voice unavailable ({reason})", reason)
        queued = time.perf_counter()
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.settings.timeout_s)
        except TimeoutError as err:
            raise PremiumSpeechError("premium voice busy: every plan slot in use", "rate_limited",
                                     transient=True) from err
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            async for chunk in self._stream(text, voice, time.perf_counter() - queued):
                yield chunk
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _stream(self, text: str, voice: VoiceChoice, queue_wait_s: float
                      ) -> AsyncIterator[PremiumChunk]:
        started = time.perf_counter()
        try:
            stack, items, first = await self._open_with_retries(text, voice)
            spoken = 0
            async with stack:
                item: Any = first
                while item is not None:
                    audio, spoken = self._decode(item, spoken)
                    if audio:
                        timing = RequestTiming(queue_wait_s, time.perf_counter() - started)
                        yield PremiumChunk(AudioChunk(audio, self.sample_rate, timing,
                                                      self.encoding), spoken)
                    item = await self._next(items, self.stall_s)
        except PremiumSpeechError as err:
            self._failed(err)
            raise
        except (ApiError, httpx.HTTPError, TimeoutError, BreakerOpenError, ValueError) as err:
            mapped = _classify(err)
            self._failed(mapped)
            raise mapped from err

    async def _open_with_retries(self, text: str, voice: VoiceChoice
                                 ) -> tuple[contextlib.AsyncExitStack, AsyncIterator[Any], Any]:
        return await call_with_retries(lambda: self._open(text, voice), self._policy,
                                       self._budget, lambda e: _classify(e).transient)

    async def _open(self, text: str, voice: VoiceChoice
                    ) -> tuple[contextlib.AsyncExitStack, AsyncIterator[Any], Any]:
        """One attempt: a request through the breaker, up to its first chunk."""
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(self.breakers.guard(
            BREAKER, failures=self.settings.breaker_failures,
            recovery_s=self.settings.breaker_recovery_s,
            permanent=lambda e: not _classify(e).transient))
        try:
            self.requests += 1
            self._chars_since_quota += len(text)  # billed once sent, heard or not
            items = self._client.text_to_speech.stream_with_timestamps(
                voice.voice_id, text=text, model_id=voice.model_id,
                output_format=self.settings.output_format,
                voice_settings=VoiceSettings(stability=voice.stability,
                                             similarity_boost=voice.similarity_boost,
                                             speed=voice.speed),
                request_options={"max_retries": 0},
            )
            stack.push_async_callback(_aclose, items)
            first = await self._next(items, self.settings.timeout_s)
            if first is None:
                raise PremiumSpeechError("ElevenLabs sent no audio", "failed")
        except BaseException as err:
            await stack.__aexit__(type(err), err, err.__traceback__)
            raise
        return stack, items, first

    @staticmethod
    async def _next(items: AsyncIterator[Any], timeout_s: float) -> Any:
        try:
            return await asyncio.wait_for(anext(items), timeout_s)
        except StopAsyncIteration:
            return None

    @staticmethod
    def _decode(item: Any, spoken: int) -> tuple[bytes, int]:
        try:
            audio = base64.b64decode(item.audio_base_64 or "", validate=True)
        except (binascii.Error, TypeError) as err:
            raise PremiumSpeechError("ElevenLabs sent undecodable audio", "failed") from err
        if item.alignment is not None:
            spoken += len(item.alignment.characters)
        return audio, spoken

    def _failed(self, err: PremiumSpeechError) -> None:
        self.failures += 1
        self.last_error = err.message
        if err.reason == "quota" and self.quota is not None:
            self._chars_since_quota = self.quota.character_limit  # nothing left until re-read
        log.warning("premium voice failed (%s): %s", err.reason, err.message)

    def health(self) -> EngineHealth:
        state = EngineState.READY if self.available() else EngineState.FAILED
        detail = "" if state is EngineState.READY else (
            f"circuit {self.breakers.state(BREAKER)}; quota left {self.remaining_characters()}; "
            f"last error: {self.last_error or '-'}")
        return EngineHealth("tts", state, f"elevenlabs:{self.settings.model_id}", detail,
                            queue_depth=self.waiting, failures=self.failures)

    async def close(self) -> None:
        await self._http.aclose()


async def _aclose(items: AsyncIterator[Any]) -> None:
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


def _detail_status(body: Any) -> str:
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail.get("status", "")) if isinstance(detail, dict) else ""


def _classify(err: BaseException) -> PremiumSpeechError:
    """One place that says what a failure means: its reason, and whether a retry may help."""
    if isinstance(err, PremiumSpeechError):
        return err
    if isinstance(err, BreakerOpenError):
        return PremiumSpeechError(err.message, "breaker_open")
    if isinstance(err, ApiError):
        status, detail = err.status_code or 0, _detail_status(err.body)
        if status == 429:
            return PremiumSpeechError(f"ElevenLabs 429 {detail or 'rate limited'}",
                                      "rate_limited", transient=True)
        if detail == "quota_exceeded":
            return PremiumSpeechError("ElevenLabs quota exceeded", "quota")
        if status >= 500:
            return PremiumSpeechError(f"ElevenLabs HTTP {status}", "server_error", transient=True)
        return PremiumSpeechError(f"ElevenLabs HTTP {status} {detail}".rstrip(), "failed")
    if isinstance(err, (TimeoutError, httpx.TimeoutException)):
        return PremiumSpeechError("ElevenLabs timed out", "timeout", transient=True)
    if isinstance(err, httpx.HTTPError):
        return PremiumSpeechError(f"ElevenLabs connection failed: {err!r}", "failed",
                                  transient=True)
    return PremiumSpeechError(f"ElevenLabs failed: {err!r}", "failed")
