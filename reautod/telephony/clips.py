"""Messages in the agent's own voice for Twilio to `<Play>`: the voicemail a machine hears.

A voicemail is left by redirecting the call to TwiML (the media stream is over by then), so the
message cannot go down the stream. Instead it is synthesized by our TTS (the voice the lead heard
on every other call, through the metered engines, so it is costed like any speech) into a WAV
clip served at `GET /twilio/clips/<token>.wav`, and the TwiML `<Play>`s that URL.

- The token is 32 random bytes (`secrets.token_urlsafe`): the URL is the secret, as Twilio fetches
  `<Play>` media without a signature we could check. A clip lives `ttl_s` (an hour) and the
  store holds at most `max_clips`; the oldest goes first.
- A campaign's voicemail names no lead, so a clip is kept by its text and synthesized once for
  every call of the campaign within its lifetime (a machine's beep does not wait for the TTS).
- No voice attached, or synthesis failed: `url` gives None and the caller of it says the message
  with Twilio's `<Say>` (logged): a voicemail in another voice beats none.
"""

from __future__ import annotations

import io
import logging
import secrets
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import Response

from reautod.engines.base import AudioChunk, AudioEncoding
from reautod.errors import ReautodError
from reautod.telephony.audio import ulaw_to_pcm16

log = logging.getLogger(__name__)

CLIPS_PATH = "/twilio/clips"
TTL_S = 3600.0
MAX_CLIPS = 32
_TOKEN_CHARS = 43  # token_urlsafe(32)

# (text, call id) -> the whole text as audio; raises ReautodError when the voice fails
Speak = Callable[[str, str], Awaitable[list[AudioChunk]]]


def to_wav(chunks: list[AudioChunk]) -> bytes:
    """Mono 16-bit PCM WAV of `chunks` (all at one sample rate; mu-law is decoded)."""
    if not chunks:
        raise ValueError("no audio to write")
    rates = {c.sample_rate for c in chunks}
    if len(rates) != 1:
        raise ValueError(f"chunks at several sample rates: {sorted(rates)}")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rates.pop())
        for chunk in chunks:
            pcm = (ulaw_to_pcm16(chunk.pcm).astype("<i2").tobytes()
                   if chunk.encoding is AudioEncoding.MULAW else chunk.pcm)
            wav.writeframes(pcm)
    return out.getvalue()


@dataclass
class _Clip:
    token: str
    text: str
    wav: bytes
    expires_at: float


class SpokenClips:
    """Clips of text in the agent's voice at unguessable URLs (see the module docstring)."""

    def __init__(self, url_for: Callable[[str], str], *, ttl_s: float = TTL_S,
                 max_clips: int = MAX_CLIPS, clock: Callable[[], float] = time.monotonic) -> None:
        self._url_for = url_for
        self._ttl_s = ttl_s
        self._max = max_clips
        self._clock = clock
        self._by_token: dict[str, _Clip] = {}
        self.speak: Speak | None = None  # the daemon attaches the voice once engines exist

    async def url(self, text: str, call_id: str) -> str | None:
        """The URL of `text` spoken in the agent's voice; None when there is no voice now."""
        self._expire()
        clip = next((c for c in self._by_token.values() if c.text == text), None)
        if clip is None:
            if self.speak is None:
                return None
            try:
                wav = to_wav(await self.speak(text, call_id))
            except (ReautodError, ValueError) as err:
                log.warning("call %s: the voicemail could not be synthesized (%s); Twilio's "
                            "voice says it", call_id, getattr(err, "code", err))
                return None
            clip = _Clip(secrets.token_urlsafe(32), text, wav, 0.0)
            while len(self._by_token) >= self._max:
                self._by_token.pop(next(iter(self._by_token)))
        # every use keeps the clip for another lifetime (Twilio fetches it when it plays it)
        self._by_token.pop(clip.token, None)
        clip.expires_at = self._clock() + self._ttl_s
        self._by_token[clip.token] = clip
        return self._url_for(f"{CLIPS_PATH}/{clip.token}.wav")

    def get(self, token: str) -> bytes | None:
        self._expire()
        clip = self._by_token.get(token)
        return clip.wav if clip is not None else None

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, c in self._by_token.items() if c.expires_at <= now]:
            del self._by_token[token]

    def router(self) -> APIRouter:
        """`GET /twilio/clips/<token>.wav`: the clip, or 404 for any other name."""
        router = APIRouter()

        @router.get(CLIPS_PATH + "/{name}")
        async def clip(name: str) -> Response:
            token = name.removesuffix(".wav")
            wav = self.get(token) if len(token) == _TOKEN_CHARS and name.endswith(".wav") else None
            if wav is None:
                return Response(status_code=404)
            return Response(wav, media_type="audio/wav", headers={"Cache-Control": "no-store"})

        return router
