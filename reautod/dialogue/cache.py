"""The response cache: approved lines (library answers, compliance lines) with their audio.

Entries are keyed by playbook, playbook version and line key ("library:how-got-number"), so a
new version never serves an old answer; `activate(playbook, version)` drops the entries of every
other version of that playbook. Each entry holds the text and, once synthesized, the audio
(`warm` fills it through a synthesize function: reautod.dialogue.part's `ApprovedLinesWarmer`
with the daemon's voice), so an approved answer plays at once. Redis when configured (shared by every process, survives a restart), a dict in
the process otherwise; hits and misses are counted for metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reautod.errors import UnavailableError
from reautod.resilience.service import Resilience

log = logging.getLogger(__name__)

Synthesize = Callable[[str], Awaitable[tuple[bytes, int]]]  # text -> (PCM s16le mono, rate)


@dataclass(frozen=True)
class CachedLine:
    text: str
    audio: bytes | None = None  # mono signed 16-bit PCM
    sample_rate: int | None = None


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    audio_hits: int  # hits that also had the audio

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class _Backend(Protocol):
    async def get(self, key: str) -> CachedLine | None: ...
    async def put(self, key: str, line: CachedLine) -> None: ...
    async def drop_except(self, prefix: str, keep: str) -> int: ...
    async def close(self) -> None: ...


class _Memory:
    def __init__(self) -> None:
        self._data: dict[str, CachedLine] = {}

    async def get(self, key: str) -> CachedLine | None:
        return self._data.get(key)

    async def put(self, key: str, line: CachedLine) -> None:
        self._data[key] = line

    async def drop_except(self, prefix: str, keep: str) -> int:
        gone = [k for k in self._data if k.startswith(prefix) and not k.startswith(keep)]
        for k in gone:
            del self._data[k]
        return len(gone)

    async def close(self) -> None:
        self._data.clear()


ENTRY_TTL_S = 30 * 24 * 3600  # an entry nobody reads for this long goes (a deleted playbook's)


class _Redis:
    """Through the redis circuit, unretried: a cache that is away costs a miss, not a wait (a
    stalled Redis would otherwise cost every lookup the timeout). Every entry expires
    `ENTRY_TTL_S` after it was last written or read."""

    def __init__(self, url: str, timeout_s: float, resilience: Resilience,
                 ttl_s: int = ENTRY_TTL_S) -> None:
        self._redis = aioredis.from_url(url, socket_timeout=timeout_s,
                                        socket_connect_timeout=timeout_s)
        self._resilience = resilience
        self._ttl_s = ttl_s

    async def _hgetall(self, key: str) -> dict[bytes, bytes]:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(key)
                pipe.expire(key, self._ttl_s)  # read: it lives on
                raw, _ = await pipe.execute()
            return cast(dict[bytes, bytes], raw)  # no decoding
        except (RedisError, OSError) as err:
            raise UnavailableError(f"redis: {err}") from err

    async def get(self, key: str) -> CachedLine | None:
        raw = await self._resilience.call("redis", lambda: self._hgetall(key), retries=False)
        if not raw or b"text" not in raw:
            return None
        rate = raw.get(b"rate")
        return CachedLine(raw[b"text"].decode(), raw.get(b"audio"), int(rate) if rate else None)

    async def put(self, key: str, line: CachedLine) -> None:
        mapping: dict[str, str | bytes | int] = {"text": line.text}
        if line.audio is not None and line.sample_rate is not None:
            mapping.update(audio=line.audio, rate=line.sample_rate)

        async def hset() -> None:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                    pipe.expire(key, self._ttl_s)
                    await pipe.execute()
            except (RedisError, OSError) as err:
                raise UnavailableError(f"redis: {err}") from err

        await self._resilience.call("redis", hset, retries=False)

    async def drop_except(self, prefix: str, keep: str) -> int:
        dropped = 0
        try:
            async for key in self._redis.scan_iter(match=f"{prefix}*", count=500):
                if not key.decode().startswith(keep):
                    dropped += await self._redis.delete(key)
        except (RedisError, OSError) as err:
            raise UnavailableError(f"redis: {err}") from err
        return dropped

    async def close(self) -> None:
        await self._redis.aclose()


class ResponseCache:
    """Approved lines by (playbook, version, key); see the module docstring."""

    def __init__(self, redis_url: str | None = None, *, prefix: str = "reautod:",
                 timeout_s: float = 1.0, resilience: Resilience | None = None) -> None:
        self.backend_name = "redis" if redis_url else "memory"
        self._backend: _Backend = (_Redis(redis_url, timeout_s, resilience or Resilience())
                                   if redis_url else _Memory())
        self._prefix = f"{prefix}lines:"
        self._hits = self._misses = self._audio_hits = 0

    def _key(self, playbook: str, version: str, key: str) -> str:
        return f"{self._prefix}{playbook}:{version}:{key}"

    async def get(self, playbook: str, version: str, key: str) -> CachedLine | None:
        """The cached line, or None (a miss). A cache that is down counts as a miss: the
        caller still has the text and the call goes on."""
        try:
            line = await self._backend.get(self._key(playbook, version, key))
        except UnavailableError as err:
            log.warning("response cache unavailable: %s", err.message)
            line = None
        if line is None:
            self._misses += 1
            return None
        self._hits += 1
        if line.audio is not None:
            self._audio_hits += 1
        return line

    async def put(self, playbook: str, version: str, key: str, line: CachedLine) -> None:
        await self._backend.put(self._key(playbook, version, key), line)

    async def activate(self, playbook: str, version: str) -> int:
        """Make `version` the playbook's only cached version; returns the entries dropped."""
        return await self._backend.drop_except(f"{self._prefix}{playbook}:",
                                               f"{self._prefix}{playbook}:{version}:")

    async def warm(self, playbook: str, version: str, lines: dict[str, str],
                   synthesize: Synthesize | None = None) -> int:
        """Store `lines` (key -> text) for `version`, with audio when `synthesize` is given;
        lines already cached with audio are kept. Returns how many were written."""
        written = 0
        for key, text in lines.items():
            cached = await self._backend.get(self._key(playbook, version, key))
            if cached is not None and cached.text == text and (cached.audio or not synthesize):
                continue
            audio, rate = await synthesize(text) if synthesize is not None else (None, None)
            await self.put(playbook, version, key, CachedLine(text, audio, rate))
            written += 1
        return written

    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, self._audio_hits)

    async def close(self) -> None:
        await self._backend.close()
