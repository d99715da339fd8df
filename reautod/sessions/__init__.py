"""Live call sessions: an in-process store for the embedded default, Redis when configured."""

from __future__ import annotations

from reautod.sessions.store import (
    MemorySessionStore,
    RedisSessionStore,
    SessionStore,
    open_session_store,
)

__all__ = ["MemorySessionStore", "RedisSessionStore", "SessionStore", "open_session_store"]
