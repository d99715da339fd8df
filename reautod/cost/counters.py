"""Fast budget counters: in-process on the embedded default, Redis when configured.

They answer "how much has this budget spent this period" without a database query before each
dial. They are a cache of the ledger, never the truth: at start-up, and on every forecast tick,
each counter is raised to the ledger's sum (`raise_to` keeps the larger value, so spend another
daemon counted but has not committed yet is not lost). Keys carry the period window, so a new
day starts at zero by itself; Redis keys expire a day after their window ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reautod.errors import UnavailableError

# Keep the larger of the stored value and ARGV[1]; refresh the expiry; return the value kept.
_RAISE_TO = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if n > v then redis.call('SET', KEYS[1], n); v = n end
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return v
"""


class Counters(Protocol):
    backend: str

    async def add(self, increments: Mapping[str, int], ttl_s: int) -> dict[str, int]:
        """Add each amount to its key; the new values (ttl_s 0: the keys never expire)."""
        ...

    async def get(self, keys: Sequence[str]) -> list[int]: ...

    async def raise_to(self, key: str, value: int, ttl_s: int) -> int: ...

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters in this process (the embedded default: one daemon, rebuilt at start)."""

    backend = "memory"

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    async def add(self, increments: Mapping[str, int], ttl_s: int) -> dict[str, int]:
        for key, amount in increments.items():
            self._values[key] = self._values.get(key, 0) + amount
        return {key: self._values[key] for key in increments}

    async def get(self, keys: Sequence[str]) -> list[int]:
        return [self._values.get(key, 0) for key in keys]

    async def raise_to(self, key: str, value: int, ttl_s: int) -> int:
        self._values[key] = max(self._values.get(key, 0), value)
        return self._values[key]

    async def close(self) -> None:
        self._values.clear()


class RedisCounters:
    """Counters shared by every daemon on one Redis, under `<prefix>budget:`."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "reautod:", timeout_s: float = 2.0) -> None:
        self._redis = aioredis.from_url(url, socket_timeout=timeout_s,
                                        socket_connect_timeout=timeout_s, decode_responses=True)
        self._prefix = f"{prefix}budget:"
        self._raise_script = self._redis.register_script(_RAISE_TO)

    async def _run(self, op: Any) -> Any:
        try:
            return await op
        except (RedisError, OSError) as err:
            raise UnavailableError(f"redis budget counters: {err}") from err

    async def add(self, increments: Mapping[str, int], ttl_s: int) -> dict[str, int]:
        keys = list(increments)

        async def pipeline() -> dict[str, int]:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incrby(self._prefix + key, increments[key])
                    if ttl_s > 0:
                        pipe.expire(self._prefix + key, ttl_s)
                results = await pipe.execute()
            step = 2 if ttl_s > 0 else 1
            return {key: int(v) for key, v in zip(keys, results[::step], strict=True)}

        values: dict[str, int] = await self._run(pipeline())
        return values

    async def get(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        raw = await self._run(self._redis.mget([self._prefix + k for k in keys]))
        return [int(v) if v is not None else 0 for v in raw]

    async def raise_to(self, key: str, value: int, ttl_s: int) -> int:
        return int(await self._run(self._raise_script(keys=[self._prefix + key],
                                                      args=[value, ttl_s])))

    async def close(self) -> None:
        await self._redis.aclose()


def open_counters(redis_url: str | None, *, prefix: str = "reautod:") -> Counters:
    if redis_url:
        return RedisCounters(redis_url, prefix=prefix)
    return MemoryCounters()
