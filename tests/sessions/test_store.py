"""Session stores: the in-process default and Redis behave the same behind one interface."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reautod.errors import UnavailableError
from reautod.sessions import MemorySessionStore, RedisSessionStore, SessionStore, open_session_store


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        s: SessionStore = MemorySessionStore()
    else:
        s = RedisSessionStore(
            request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix")
        )
    yield s
    await s.close()


async def test_put_get_all_delete(store: SessionStore) -> None:
    await store.ping()
    assert await store.get("c1") is None
    await store.put("c1", {"state": "listening", "turns": 2})
    await store.put("c2", {"state": "speaking"})
    await store.put("c1", {"state": "speaking", "turns": 3})
    assert await store.get("c1") == {"state": "speaking", "turns": 3}
    assert set(await store.all()) == {"c1", "c2"}
    await store.delete("c1")
    await store.delete("missing")  # deleting what is not there is fine
    assert await store.all() == {"c2": {"state": "speaking"}}


async def test_redis_sessions_survive_a_new_client(redis_url: str, redis_prefix: str) -> None:
    first = RedisSessionStore(redis_url, prefix=redis_prefix)
    await first.put("c9", {"state": "listening"})
    await first.close()
    second = RedisSessionStore(redis_url, prefix=redis_prefix)
    assert await second.get("c9") == {"state": "listening"}
    await second.close()


async def test_redis_sessions_expire_unless_written(redis_url: str, redis_prefix: str) -> None:
    store = RedisSessionStore(redis_url, prefix=redis_prefix, ttl_s=300)
    await store.put("c9", {"state": "listening"})
    assert 0 < await store._redis.ttl(f"{redis_prefix}sessions") <= 300
    await store.close()


async def test_dead_redis_is_a_clear_unavailable_error() -> None:
    dead = RedisSessionStore("redis://127.0.0.1:1/0", timeout_s=0.5)
    with pytest.raises(UnavailableError, match="redis"):
        await dead.ping()
    await dead.close()


def test_backend_follows_the_configured_url() -> None:
    assert open_session_store(None).backend == "memory"
    assert open_session_store("redis://127.0.0.1:6379/0").backend == "redis"
