"""Redis down, calls go on: the fault proxy between the session store and the real Redis cuts or
stalls the link; sessions keep working in-process, the redis circuit opens, and after
recovery it closes and Redis gets what changed meanwhile (new calls, and calls that ended).
The response cache on the same Redis turns a stall into misses at once, not waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from reautod.dialogue.cache import CachedLine, ResponseCache
from reautod.errors import UnavailableError
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings, ServicePolicy
from reautod.sessions import FallbackSessionStore, RedisSessionStore
from tests.fixtures.fault_proxy import FaultProxy


@pytest.fixture
def proxy(redis_url: str) -> Iterator[FaultProxy]:
    target = urlsplit(redis_url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 6379) as p:
        yield p


@pytest.fixture
async def direct(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisSessionStore]:
    """The same keys, straight to Redis (what a restarted daemon would read)."""
    store = RedisSessionStore(redis_url, prefix=redis_prefix)
    yield store
    await store.close()


def fallback(proxy: FaultProxy, redis_url: str, prefix: str) -> FallbackSessionStore:
    db = urlsplit(redis_url).path or "/0"
    remote = RedisSessionStore(f"redis://127.0.0.1:{proxy.port}{db}", prefix=prefix,
                               timeout_s=0.3)
    policy = ServicePolicy(failures=2, recovery_s=1.0, retries=1, backoff_base_s=0.01,
                           backoff_max_s=0.01)
    return FallbackSessionStore(remote, Resilience(ResilienceSettings(redis=policy)))


async def recovered(store: FallbackSessionStore) -> None:
    for _ in range(50):  # the half-open probe is let through after recovery_s
        await asyncio.sleep(0.1)
        try:
            await store.ping()
            return
        except UnavailableError:
            continue
    raise AssertionError("the redis circuit never closed")


@pytest.mark.parametrize("fault", ["cut", "stall"])  # (reset: the outbox fault test)
async def test_calls_continue_while_redis_is_away_and_redis_catches_up(
    fault: str, proxy: FaultProxy, direct: RedisSessionStore, redis_url: str, redis_prefix: str,
) -> None:
    store = fallback(proxy, redis_url, redis_prefix)
    await store.put("ended-later", {"state": "listening"})
    assert await direct.get("ended-later") == {"state": "listening"}

    getattr(proxy, fault)()
    await store.put("new", {"state": "greeting"})  # neither raises nor waits for Redis
    await store.put("ended-later", {"state": "speaking"})
    await store.delete("ended-later")
    assert store.degraded
    assert store._resilience.state("redis") == "open"
    tried = proxy.connections
    assert await store.get("new") == {"state": "greeting"}  # served in-process
    assert await store.all() == {"new": {"state": "greeting"}}
    assert proxy.connections == tried  # the open circuit kept us from trying

    proxy.heal()
    await recovered(store)
    assert store._resilience.state("redis") == "closed" and not store.degraded
    assert await direct.all() == {"new": {"state": "greeting"}}
    await store.close()


async def test_a_stalled_redis_costs_the_response_cache_misses_not_waits(
    proxy: FaultProxy, redis_url: str, redis_prefix: str,
) -> None:
    db = urlsplit(redis_url).path or "/0"
    resilience = Resilience(ResilienceSettings(redis=ServicePolicy(failures=2, recovery_s=30)))
    cache = ResponseCache(f"redis://127.0.0.1:{proxy.port}{db}", prefix=redis_prefix,
                          timeout_s=0.2, resilience=resilience)
    await cache.put("pb", "v1", "greeting", CachedLine("Hello!"))
    assert await cache.get("pb", "v1", "greeting") == CachedLine("Hello!")
    proxy.stall()
    for _ in range(2):  # each waits out the timeout, and counts
        assert await cache.get("pb", "v1", "greeting") is None
    assert resilience.state("redis") == "open"
    tried = proxy.connections
    assert await cache.get("pb", "v1", "greeting") is None  # at once: the circuit is open
    assert proxy.connections == tried
    await cache.close()
