"""Session stores hold a JSON snapshot per live call, so a restarted daemon knows what was live."""

from __future__ import annotations

import json
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reautod.errors import UnavailableError

SESSION_TTL_S = 6 * 3600  # longer than any call (Twilio's limit is 4 h)


class SessionStore(Protocol):
    backend: str

    async def put(self, call_id: str, snapshot: dict[str, Any]) -> None: ...
    async def get(self, call_id: str) -> dict[str, Any] | None: ...
    async def delete(self, call_id: str) -> None: ...
    async def all(self) -> dict[str, dict[str, Any]]: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemorySessionStore:
    """The embedded default: lives and dies with the process."""

    backend = "memory"

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    async def put(self, call_id: str, snapshot: dict[str, Any]) -> None:
        self._data[call_id] = json.dumps(snapshot, default=str)

    async def get(self, call_id: str) -> dict[str, Any] | None:
        raw = self._data.get(call_id)
        return json.loads(raw) if raw is not None else None

    async def delete(self, call_id: str) -> None:
        self._data.pop(call_id, None)

    async def all(self) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self._data.items()}

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


class RedisSessionStore:
    """Sessions in a Redis hash under `<prefix>sessions`, surviving a daemon restart."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "reautod:", timeout_s: float = 2.0,
                 ttl_s: int = SESSION_TTL_S) -> None:
        self._redis = aioredis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self._key = f"{prefix}sessions"
        self._ttl_s = ttl_s

    async def _run(self, op: Any) -> Any:
        try:
            return await op
        except (RedisError, OSError) as err:
            raise UnavailableError(f"redis: {err}") from err

    async def put(self, call_id: str, snapshot: dict[str, Any]) -> None:
        # The hash expires unless written to: sessions a crashed daemon left do not live forever
        # (a live call writes its session at every turn, far more often than the TTL).
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key, call_id, json.dumps(snapshot, default=str))
            pipe.expire(self._key, self._ttl_s)
            await self._run(pipe.execute())

    async def get(self, call_id: str) -> dict[str, Any] | None:
        raw = await self._run(self._redis.hget(self._key, call_id))
        return json.loads(raw) if raw is not None else None

    async def delete(self, call_id: str) -> None:
        await self._run(self._redis.hdel(self._key, call_id))

    async def all(self) -> dict[str, dict[str, Any]]:
        raw: dict[str, str] = await self._run(self._redis.hgetall(self._key))
        return {k: json.loads(v) for k, v in raw.items()}

    async def ping(self) -> None:
        await self._run(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
