"""The response cache, in-process and on Redis: text and audio by playbook version, hit and miss
counts, old versions dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from reautod.dialogue.cache import ENTRY_TTL_S, CachedLine, ResponseCache
from reautod.dialogue.lines import approved_lines
from tests.dialogue.fakes import example


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ResponseCache]:
    if request.param == "memory":
        made = ResponseCache()
    else:
        made = ResponseCache(request.getfixturevalue("redis_url"),
                             prefix=request.getfixturevalue("redis_prefix"))
    try:
        yield made
    finally:
        await made.close()


async def test_lines_by_version_with_audio(cache: ResponseCache) -> None:
    loaded = example("solar-homeowners")
    lines = approved_lines(loaded.playbook)
    assert lines["compliance:disclosure"].startswith("Yes, I'm an automated assistant for Bright Roof Solar.")
    synthesized: list[str] = []

    async def synthesize(text: str) -> tuple[bytes, int]:
        synthesized.append(text)
        return text.encode()[:8] + b"\x00\xff", 22050

    assert await cache.get(loaded.name, loaded.version, "library:cost") is None
    assert await cache.warm(loaded.name, loaded.version, lines, synthesize) == len(lines)
    assert await cache.warm(loaded.name, loaded.version, lines, synthesize) == 0  # all there
    assert len(synthesized) == len(lines)
    hit = await cache.get(loaded.name, loaded.version, "library:cost")
    assert hit == CachedLine(lines["library:cost"], lines["library:cost"].encode()[:8] + b"\x00\xff",
                             22050)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.audio_hits) == (1, 1, 1) and stats.hit_rate == 0.5

    # A new version: the old one's entries go, other playbooks' stay.
    await cache.put("other", "v9@x", "library:a", CachedLine("kept"))
    await cache.put(loaded.name, "v2@new", "library:cost", CachedLine("new text"))
    assert await cache.activate(loaded.name, "v2@new") == len(lines)
    assert await cache.get(loaded.name, loaded.version, "library:cost") is None
    assert (await cache.get(loaded.name, "v2@new", "library:cost")) == CachedLine("new text")
    assert (await cache.get("other", "v9@x", "library:a")) == CachedLine("kept")


async def test_a_dead_redis_is_a_miss_not_a_failure() -> None:
    cache = ResponseCache("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        assert await cache.get("p", "v", "k") is None
        assert cache.stats().misses == 1
    finally:
        await cache.close()


async def test_redis_entries_expire_unless_used(redis_url: str, redis_prefix: str) -> None:
    """No key without a TTL: a deleted playbook's lines do not stay in Redis for good."""
    cache = ResponseCache(redis_url, prefix=redis_prefix)
    client = aioredis.from_url(redis_url)
    try:
        await cache.put("pb", "v1", "library:cost", CachedLine("It is free.", b"\x00\x01", 8000))
        key = f"{redis_prefix}lines:pb:v1:library:cost"
        await client.expire(key, 5)  # as if nobody had used it for a while
        assert await cache.get("pb", "v1", "library:cost") is not None
        assert 5 < await client.ttl(key) <= ENTRY_TTL_S  # a read keeps it alive
    finally:
        await client.delete(f"{redis_prefix}lines:pb:v1:library:cost")
        await client.aclose()
        await cache.close()
