"""The premium voice against a stand-in ElevenLabs server run as a subprocess (never the real API)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reautod.cost.settings import ElevenLabsSettings
from reautod.engines.base import AudioEncoding
from reautod.engines.elevenlabs import ElevenLabsTTS, PremiumSpeechError, VoiceChoice
from reautod.engines.tiered import SpeechUsage, TieredTTS, resume_at
from reautod.resilience.breaker import Breakers
from reautod.store.enums import VoiceTier
from tests.engines.elevenlabs_standin import API_KEY
from tests.pipeline.fakes import FakeTTS

SENTENCE = "Thanks for taking my call today, I will keep this short and simple for you."


@dataclass
class StandIn:
    process: subprocess.Popen[str]
    url: str

    def log(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_standin/log").json()  # type: ignore[no-any-return]

    def mode(self, **values: Any) -> None:
        httpx.post(f"{self.url}/_standin/mode", json=values).raise_for_status()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def start_standin(*args: str) -> StandIn:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.engines.elevenlabs_standin", *args],
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("PORT "), line
    return StandIn(process, f"http://127.0.0.1:{int(line.split()[1])}")


@pytest.fixture
def standin(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    marker = request.node.get_closest_marker("standin")
    server = start_standin(*(marker.args if marker else ()))
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.kill()


def settings(url: str, **overrides: Any) -> ElevenLabsSettings:
    values: dict[str, Any] = {"enabled": True, "base_url": url, "timeout_s": 2.0, "retries": 2,
                              "breaker_failures": 3, "breaker_recovery_s": 0.5}
    return ElevenLabsSettings(**(values | overrides))


@pytest.fixture
async def engine(standin: StandIn) -> AsyncIterator[ElevenLabsTTS]:
    tts = ElevenLabsTTS(settings(standin.url), API_KEY, concurrency=2,
                        breakers=Breakers(), backoff_s=0.01)
    try:
        yield tts
    finally:
        await tts.close()


VOICE = VoiceChoice("voice-campaign-a", "eleven_flash_v2_5", stability=0.3,
                    similarity_boost=0.9, speed=1.1)


async def speak(tts: ElevenLabsTTS, text: str = SENTENCE, call_id: str = "c1") -> list[Any]:
    return [piece async for piece in tts.stream(text, VOICE, call_id=call_id)]


async def test_streams_ulaw_8000_with_the_campaign_voice_and_alignment(
        engine: ElevenLabsTTS, standin: StandIn) -> None:
    pieces = await speak(engine)
    assert all(p.audio.encoding is AudioEncoding.MULAW and p.audio.sample_rate == 8000
               for p in pieces)
    assert sum(len(p.audio.pcm) for p in pieces) == 80 * len(SENTENCE)  # 10 ms a character
    assert pieces[-1].characters_spoken == len(SENTENCE)
    assert [p.characters_spoken for p in pieces] == sorted(p.characters_spoken for p in pieces)
    (request,) = standin.log()["requests"]
    assert request["voice_id"] == "voice-campaign-a"
    assert request["query"]["output_format"] == "ulaw_8000"
    assert request["body"]["model_id"] == "eleven_flash_v2_5"
    assert request["body"]["voice_settings"]["stability"] == 0.3
    assert request["body"]["voice_settings"]["speed"] == 1.1


async def test_pcm_output_for_a_pcm_pipeline(standin: StandIn) -> None:
    tts = ElevenLabsTTS(settings(standin.url, output_format="pcm_16000"), API_KEY,
                        concurrency=2, breakers=Breakers())
    try:
        pieces = await speak(tts, "Hello there.")
    finally:
        await tts.close()
    assert {(p.audio.encoding, p.audio.sample_rate) for p in pieces} == {
        (AudioEncoding.PCM16, 16000)}
    assert sum(len(p.audio.pcm) for p in pieces) == 160 * len("Hello there.")


@pytest.mark.standin("--concurrency", "2", "--chunk-ms", "20")
async def test_plan_concurrency_is_a_queue_not_a_429_storm(
        engine: ElevenLabsTTS, standin: StandIn) -> None:
    results = await asyncio.gather(*(speak(engine, SENTENCE, f"c{i}") for i in range(6)))
    assert all(r[-1].characters_spoken == len(SENTENCE) for r in results)
    log = standin.log()
    assert log["max_in_flight"] == 2  # the plan's limit was used, never exceeded
    assert log["rejected_concurrency"] == 0
    assert len(log["requests"]) == 6  # no retries were needed


async def test_system_busy_and_5xx_are_retried_with_backoff(
        engine: ElevenLabsTTS, standin: StandIn) -> None:
    standin.mode(busy_next=1, error_next=1)
    pieces = await speak(engine)
    assert pieces[-1].characters_spoken == len(SENTENCE)
    assert len(standin.log()["requests"]) == 3
    assert engine.breakers.state("elevenlabs") == "closed"


async def test_429_beyond_the_retries_fails_and_the_breaker_opens_then_recovers(
        engine: ElevenLabsTTS, standin: StandIn) -> None:
    standin.mode(busy_next=3)
    with pytest.raises(PremiumSpeechError) as info:
        await speak(engine)
    assert info.value.reason == "rate_limited"
    assert engine.breakers.state("elevenlabs") == "open"  # 3 consecutive failures
    assert not engine.available()
    health = engine.health()
    assert health.state.value == "failed" and "circuit open" in health.detail
    assert health.failures == 1 and "429" in health.detail
    with pytest.raises(PremiumSpeechError) as info:
        await speak(engine)
    assert info.value.reason == "breaker_open"
    assert len(standin.log()["requests"]) == 3  # nothing was sent while open
    await asyncio.sleep(0.6)
    assert engine.available()  # half-open: the next request is the trial
    assert (await speak(engine))[-1].characters_spoken == len(SENTENCE)
    assert engine.breakers.states() == {"elevenlabs": "closed"}
    assert engine.health().state.value == "ready"


async def test_quota_is_read_tracked_and_respected(engine: ElevenLabsTTS,
                                                   standin: StandIn) -> None:
    quota = await engine.refresh_quota()
    assert (quota.tier, quota.character_count, quota.character_limit) == ("creator", 0, 100_000)
    assert quota.next_reset is not None
    await speak(engine)
    assert engine.remaining_characters() == 100_000 - len(SENTENCE)
    standin.mode(character_count=99_000)
    await engine.refresh_quota()
    assert engine.remaining_characters() == 1_000
    assert not engine.available()  # under the 5,000-character reserve
    with pytest.raises(PremiumSpeechError) as info:
        await speak(engine)
    assert info.value.reason == "quota"


async def test_quota_exceeded_from_the_server_is_not_retried(
        standin: StandIn) -> None:
    tts = ElevenLabsTTS(settings(standin.url, quota_reserve_chars=0), API_KEY, concurrency=2,
                        breakers=Breakers())
    try:
        standin.mode(character_count=99_990)
        with pytest.raises(PremiumSpeechError) as info:
            await speak(tts)
        assert info.value.reason == "quota"
        assert len(standin.log()["requests"]) == 1
    finally:
        await tts.close()


async def test_a_wrong_key_fails_without_retries(standin: StandIn) -> None:
    tts = ElevenLabsTTS(settings(standin.url), "wrong", concurrency=2, breakers=Breakers())
    try:
        with pytest.raises(PremiumSpeechError) as info:
            await speak(tts)
        assert info.value.reason == "failed" and "401" in info.value.message
        assert len(standin.log()["requests"]) == 0  # refused before it counted
    finally:
        await tts.close()


async def test_a_stall_mid_sentence_is_a_timeout(standin: StandIn) -> None:
    tts = ElevenLabsTTS(settings(standin.url), API_KEY, concurrency=2, breakers=Breakers(),
                        stall_s=0.3)
    standin.mode(stall_after=2)
    try:
        pieces: list[Any] = []
        with pytest.raises(PremiumSpeechError) as info:
            async for piece in tts.stream(SENTENCE, VOICE, call_id="c1"):
                pieces.append(piece)
        assert info.value.reason == "timeout"
        assert len(pieces) == 2
    finally:
        await tts.close()


# --- the tiered voice: fallback and tier changes ---

def test_resume_at_backs_up_to_the_start_of_a_cut_word() -> None:
    text = "hello brave new world"
    assert resume_at(text, 0) == 0
    assert resume_at(text, 8) == 6  # "bra|ve" -> "brave new world"
    assert resume_at(text, 6) == 6  # at a word start
    assert resume_at(text, 5) == 5  # right after a word: the space follows
    assert resume_at(text, len(text)) == len(text)


@pytest.mark.standin("--chars-per-chunk", "4", "--chunk-ms", "40")
async def test_killing_the_server_mid_sentence_hands_the_rest_to_the_local_voice(
        engine: ElevenLabsTTS, standin: StandIn) -> None:
    local = FakeTTS()
    usage: list[SpeechUsage] = []
    tiered = TieredTTS(local, engine, on_speech=usage.append)
    tiered.begin_call("c1", VOICE)
    tiered.set_tier("c1", VoiceTier.PREMIUM)
    encodings = []
    premium_chars = 0
    async for chunk in tiered.synthesize(SENTENCE, call_id="c1"):
        encodings.append(chunk.encoding)
        if chunk.encoding is AudioEncoding.MULAW:
            premium_chars += len(chunk.pcm) // 80
            if premium_chars >= 12:  # mid-sentence, mid-word ("taki|ng")
                standin.kill()
    # premium audio, then local audio in the same stream: no pause for a retry, no lost words
    first_local = encodings.index(AudioEncoding.PCM16)
    assert set(encodings[:first_local]) == {AudioEncoding.MULAW}
    assert set(encodings[first_local:]) == {AudioEncoding.PCM16}
    ((_, rest),) = local.texts
    assert SENTENCE.endswith(rest) and len(rest) < len(SENTENCE)
    assert rest[0] != " " and SENTENCE[len(SENTENCE) - len(rest) - 1] == " "  # a word start
    assert tiered.tier_of("c1") is VoiceTier.LOCAL  # the call stays local from now on
    async for _ in tiered.synthesize("And one more thing.", call_id="c1"):
        pass
    assert local.texts[-1] == ("c1", "And one more thing.")
    assert [u.tier for u in usage] == [VoiceTier.PREMIUM, VoiceTier.LOCAL, VoiceTier.LOCAL]
    assert 12 <= usage[0].characters < len(SENTENCE)


async def test_a_tier_change_waits_for_the_next_utterance(engine: ElevenLabsTTS) -> None:
    local = FakeTTS()
    tiered = TieredTTS(local, engine)
    tiered.begin_call("c1", VOICE)
    tiered.set_tier("c1", VoiceTier.PREMIUM)
    encodings = []
    async for chunk in tiered.synthesize(SENTENCE, call_id="c1"):
        encodings.append(chunk.encoding)
        tiered.set_tier("c1", VoiceTier.LOCAL)  # decided mid-sentence
    assert set(encodings) == {AudioEncoding.MULAW}  # the sentence kept its voice
    assert local.texts == []
    async for _ in tiered.synthesize("Next.", call_id="c1"):
        pass
    assert local.texts == [("c1", "Next.")]


async def test_unavailable_premium_speaks_local_from_the_start(standin: StandIn) -> None:
    tts = ElevenLabsTTS(settings(standin.url, enabled=False), API_KEY, concurrency=2,
                        breakers=Breakers())
    local = FakeTTS()
    tiered = TieredTTS(local, tts)
    tiered.begin_call("c1", VOICE)
    tiered.set_tier("c1", VoiceTier.PREMIUM)
    try:
        chunks = [c async for c in tiered.synthesize(SENTENCE, call_id="c1")]
    finally:
        await tts.close()
    assert chunks and {c.encoding for c in chunks} == {AudioEncoding.PCM16}
    assert local.texts == [("c1", SENTENCE)]
    assert standin.log()["requests"] == []


async def test_429_falls_back_to_the_local_voice_at_once_for_the_call(standin: StandIn) -> None:
    # the default policy: no retry before the local voice (a retry is a pause on the line)
    tts = ElevenLabsTTS(settings(standin.url, retries=ElevenLabsSettings().retries,
                                 breaker_failures=2, breaker_recovery_s=60),
                        API_KEY, concurrency=2, breakers=Breakers())
    local = FakeTTS(sample_rate=8000)
    tiered = TieredTTS(local, tts)
    standin.mode(busy_next=1000)  # ElevenLabs answers 429 system_busy to everything
    try:
        for call_id in ("c1", "c2", "c3"):
            tiered.begin_call(call_id, VOICE)
            tiered.set_tier(call_id, VoiceTier.PREMIUM)
            chunks = [c async for c in tiered.synthesize(SENTENCE, call_id=call_id)]
            assert b"".join(c.pcm for c in chunks) == local.pcm(SENTENCE)  # all of it, locally
            assert tiered.tier_of(call_id) is VoiceTier.LOCAL  # and for the rest of the call
        assert [c async for c in tiered.synthesize("Next.", call_id="c1")]
    finally:
        await tts.close()
    # one request per call until the circuit opened (2 failures): the third call made none
    assert len(standin.log()["requests"]) == 2
    assert local.texts == [("c1", SENTENCE), ("c2", SENTENCE), ("c3", SENTENCE), ("c1", "Next.")]
