"""Voicemail clips in the agent's voice: synthesized once per text by the TTS given, served as
WAV at unguessable URLs that expire, and None (the caller falls back to <Say>) without a voice."""

from __future__ import annotations

import io
import wave

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from reautod.engines.base import AudioChunk, AudioEncoding
from reautod.errors import EngineError
from reautod.pipeline.greetings import synthesize_all
from reautod.telephony.audio import pcm16_to_ulaw
from reautod.telephony.clips import CLIPS_PATH, SpokenClips, to_wav
from tests.pipeline.fakes import FakeTTS

BASE = "https://voice.example.com"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def fetch(clips: SpokenClips, url: str) -> httpx.Response:
    app = FastAPI()
    app.include_router(clips.router())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        return await client.get(url.removeprefix(BASE))


def frames(wav: bytes) -> tuple[int, bytes]:
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(w.getnframes())


async def test_a_clip_is_the_tts_audio_at_an_unguessable_url() -> None:
    tts, clock = FakeTTS(), Clock()
    clips = SpokenClips(lambda path: BASE + path, ttl_s=60, clock=clock)
    assert await clips.url("Please call us back.", "c1") is None  # no voice attached yet
    clips.speak = lambda text, call_id: synthesize_all(tts, text, call_id=call_id, timeout_s=5)
    url = await clips.url("Please call us back.", "c1")
    assert url is not None and url.startswith(f"{BASE}{CLIPS_PATH}/") and url.endswith(".wav")
    assert len(url.rsplit("/", 1)[1]) == 43 + 4  # 32 random bytes, base64url, then .wav
    response = await fetch(clips, url)
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    spoken = [c async for c in tts.synthesize("Please call us back.", call_id="check")]
    assert frames(response.content) == (16000, b"".join(c.pcm for c in spoken))
    # the same message again (every voicemail of a campaign): the same clip, synthesized once
    assert await clips.url("Please call us back.", "c2") == url
    assert [text for _, text in tts.texts] == ["Please call us back.", "Please call us back."]
    other = await clips.url("Another message.", "c3")
    assert other is not None and other != url
    token = url[-47:-4]
    guessed = token[:-1] + ("A" if token[-1] != "A" else "B")
    for wrong in (url.replace(token, guessed), url.removesuffix(".wav"),
                  f"{BASE}{CLIPS_PATH}/a.wav"):
        assert (await fetch(clips, wrong)).status_code == 404
    clock.now = 61.0  # past its lifetime: gone
    assert (await fetch(clips, url)).status_code == 404


async def test_a_failing_voice_gives_no_clip() -> None:
    tts = FakeTTS(fail_with=EngineError("voice down", code="tts_failed"), fail_next=1)
    clips = SpokenClips(lambda path: BASE + path)
    clips.speak = lambda text, call_id: synthesize_all(tts, text, call_id=call_id, timeout_s=5)
    assert await clips.url("Call us back.", "c1") is None
    assert await clips.url("Call us back.", "c1") is not None  # the voice is back


def test_wav_of_mulaw_and_mixed_rates() -> None:
    pcm = (np.arange(-800, 800, 10, dtype=np.int16) * 8).astype(np.int16)
    rate, data = frames(to_wav([AudioChunk(pcm16_to_ulaw(pcm), 8000,
                                           encoding=AudioEncoding.MULAW)]))
    decoded = np.frombuffer(data, dtype="<i2")
    assert rate == 8000 and len(decoded) == len(pcm)
    assert np.max(np.abs(decoded.astype(int) - pcm.astype(int))) < 300  # G.711's step
    with pytest.raises(ValueError, match="sample rates"):
        to_wav([AudioChunk(b"\0\0", 8000), AudioChunk(b"\0\0", 16000)])
    with pytest.raises(ValueError, match="no audio"):
        to_wav([])
