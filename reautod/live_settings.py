"""The one owner of the running settings, so a reload (SIGHUP, `reautoctl reload`) reaches calls.

Parts that act per call (the call manager, telephony) keep this holder, not a `Settings`, and
read `current` when they start something: the next call uses the reloaded `calls.*`, `agent.*`
and `engines.*`, while a call in progress keeps the settings it started with (its session got
them at admission). What is bound once at start-up (sockets, paths, the database, models,
Twilio's client) is listed in RESTART_ONLY: a reload keeps the running values of those sections
and says which of them changed, so `config show` shows what is in effect.
"""

from __future__ import annotations

import logging

from reautod.config import Settings

log = logging.getLogger(__name__)

# settings that only take effect at start-up; a reload that changes them says so
RESTART_ONLY = (
    "state_dir",
    "runtime_dir",
    "database_url",
    "redis_url",
    "control",
    "http",
    "webrtc",
    "metrics",
    "models",
    "twilio",
    "integrations",
    "dialogue",
    "cost",
    "elevenlabs",
    "retention",
    "resilience",
)


class LiveSettings:
    """The settings in effect now; `replace` is the only writer (the daemon's reload)."""

    def __init__(self, settings: Settings) -> None:
        self._current = settings

    @property
    def current(self) -> Settings:
        return self._current

    def replace(self, settings: Settings) -> list[str]:
        """Take a validated new configuration; returns the restart-only keys it would change
        (their running values are kept)."""
        changed = [k for k in RESTART_ONLY if getattr(settings, k) != getattr(self._current, k)]
        kept = {k: getattr(self._current, k) for k in changed}
        self._current = settings.model_copy(update=kept) if kept else settings
        return changed
