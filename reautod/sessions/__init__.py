"""Live call sessions: an in-process store for the embedded default, Redis when configured."""

from __future__ import annotations

from reautod.resilience.service import Resilience
from reautod.sessions.fallback import FallbackSessionStore
from reautod.sessions.store import MemorySessionStore, RedisSessionStore, SessionStore


def open_session_store(redis_url: str | None, *, prefix: str = "reautod:",
                       resilience: Resilience | None = None) -> SessionStore:
    """In-process without a URL; Redis otherwise, behind its circuit with an in-process fallback
    when `resilience` is given."""
    if not redis_url:
        return MemorySessionStore()
    redis = RedisSessionStore(redis_url, prefix=prefix)
    return redis if resilience is None else FallbackSessionStore(redis, resilience)


__all__ = ["FallbackSessionStore", "MemorySessionStore", "RedisSessionStore", "SessionStore",
           "open_session_store"]
