"""The premium voice in the daemon: ElevenLabs behind the shared `TieredTTS`, a tier per call.

Built by the cost part when `[elevenlabs] enabled` (the API key is then required); without it the
calls' `TieredTTS` has no premium side and every call speaks locally. `PremiumVoice` is a
`CallObserver` in the daemon's fan-out:

- started: the call gets `[elevenlabs]`'s voice on the local tier at once; then, in a task, the
  call's row (written by the dialer before it dialed) gives its campaign and its lead's current
  score, and the `TierEngine` decides (premium only where score x deal value x uplift beats the
  premium's marginal cost and the budgets allow it; the decision is stored). The tier applies
  from the next utterance, never in the middle of one; a call that is not the dialer's (a
  simulated or inbound call) has no score and stays local.
- ended: the call's voice state and decision sequence are dropped.

The subscription's character quota is read at start and every `quota_interval_s`; a failed read
is logged and the last known quota kept (the breaker, not the quota, guards a failing API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.cost.tiers import PremiumTerms, TierEngine
from reautod.engines.elevenlabs import ElevenLabsTTS, PremiumSpeechError, VoiceChoice
from reautod.engines.tiered import TieredTTS
from reautod.errors import ReautodError
from reautod.store.call_observer import call_uuid

log = logging.getLogger(__name__)

# the call's campaign and its lead's current score (None: no lead, or not scored yet)
CallFacts = Callable[[uuid.UUID], Awaitable[tuple[uuid.UUID | None, int | None]]]


class QuotaMetrics(Protocol):
    def elevenlabs_quota(self, remaining_characters: int) -> None: ...


class PremiumVoice:
    """See the module docstring."""

    def __init__(self, eleven: ElevenLabsTTS, tiers: TierEngine, terms: PremiumTerms,
                 voice: VoiceChoice, call_facts: CallFacts, *, quota_interval_s: float,
                 clock: Callable[[], datetime], metrics: QuotaMetrics | None = None) -> None:
        self.eleven = eleven
        self.tiers = tiers
        self.terms = terms
        self.voice = voice
        self.call_facts = call_facts
        self.quota_interval_s = quota_interval_s
        self.clock = clock
        self.metrics = metrics
        self.tiered: TieredTTS | None = None  # the calls' voice, once the engines are metered
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: set[str] = set()
        self._quota: asyncio.Task[None] | None = None

    def attach(self, tiered: TieredTTS) -> None:
        self.tiered = tiered

    async def start(self) -> None:
        self._quota = asyncio.create_task(self._quota_loop(), name="elevenlabs-quota")

    async def _quota_loop(self) -> None:
        while True:
            try:
                quota = await self.eleven.refresh_quota()
                if self.metrics is not None:
                    self.metrics.elevenlabs_quota(quota.character_limit - quota.character_count)
            except PremiumSpeechError as err:
                log.warning("ElevenLabs quota not read: %s", err.reason)
            await asyncio.sleep(self.quota_interval_s)

    # -- CallObserver ---------------------------------------------------------------------------

    def on_call_started(self, info: CallInfo) -> None:
        if self.tiered is None:
            return
        self.tiered.begin_call(info.call_id, self.voice)
        self._live.add(info.call_id)
        task = asyncio.get_running_loop().create_task(self._decide(self.tiered, info.call_id),
                                                      name=f"voice-tier-{info.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, tiered: TieredTTS, call_id: str) -> None:
        call = call_uuid(call_id)
        try:
            campaign_id, score = await self.call_facts(call)
            decision = await self.tiers.decide(call, campaign_id, self.terms, lead_score=score,
                                               now=self.clock())
        except ReautodError as err:
            log.warning("call %s stays on the local voice: %s", call_id, err.message)
            return
        if call_id in self._live:
            tiered.set_tier(call_id, decision.tier)
        else:  # the call ended while its tier was being decided
            self.tiers.forget(call)

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self._live.discard(call_id)
        if self.tiered is not None:
            self.tiered.end_call(call_id)
        self.tiers.forget(call_uuid(call_id))

    def on_turn(self, turn: TurnRecord) -> None:
        """The tier is decided per call (a stage-by-stage decision needs the dialogue's stages)."""

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Nothing for the voice: TieredTTS's stream is cancelled like any synthesis."""

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """Nothing for the voice."""

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """Nothing for the voice."""

    async def close(self) -> None:
        for task in (*self._tasks, *([self._quota] if self._quota else [])):
            task.cancel()
        for task in (*self._tasks, *([self._quota] if self._quota else [])):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.eleven.close()
