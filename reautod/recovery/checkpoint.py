"""A call's checkpoint: what a restarted daemon needs to pick the call up again, and where it is
kept (one small interface, two homes).

Written after every turn (and at the start and the loss of the call's stream), deleted when the
call ends for good. It holds who the call is with (call id, CallSid, lead name, campaign,
direction, opening), the transcript so far (what the caller said and heard), and the
conversation's own checkpoint (the qualifying agent's stage, facts, score, playbook version and
variant). Every copy expires after `ttl_s` whatever happens to the daemon.

- `DirectoryCheckpoints`: one JSON file per call under <state_dir>/checkpoints (the embedded
  default); written aside, fsynced and renamed, so a crash leaves the old one or the new one.
- `RedisCheckpoints`: one key per call (`<prefix>checkpoint:<call id>`) with the TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import RedisError

from reautod.errors import StoreError, UnavailableError

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 6 * 3600  # longer than any call (Twilio's limit is 4 h) and its resume window


class SaidLine(BaseModel):
    """One turn of the transcript, as the caller heard it."""

    model_config = ConfigDict(frozen=True)

    index: int
    speaker: Literal["caller", "agent"]
    text: str


class CallCheckpoint(BaseModel):
    """What resuming a call needs (see the module docstring)."""

    call_id: str
    call_sid: str | None = None
    lead_name: str = ""
    campaign: str | None = None
    goal: str | None = None
    direction: Literal["outbound", "inbound"] = "outbound"
    opening: str | None = None
    transport: str = "twilio"
    started_at: datetime
    updated_at: datetime
    transcript: list[SaidLine] = Field(default_factory=list)
    conversation: dict[str, Any] = Field(default_factory=dict)
    resumes: int = 0  # how often it was resumed already
    lost_at: datetime | None = None  # when its stream died without the call ending

    @property
    def last_index(self) -> int:
        return max((line.index for line in self.transcript), default=0)

    def last_words(self) -> str:
        """The caller's last turn ("" when they said nothing yet)."""
        for line in reversed(self.transcript):
            if line.speaker == "caller" and line.text.strip():
                return line.text.strip()
        return ""


class CheckpointStore(Protocol):
    """Where checkpoints live; every method may raise StoreError or UnavailableError."""

    backend: str

    async def save(self, checkpoint: CallCheckpoint) -> None: ...

    async def load(self, call_id: str) -> CallCheckpoint | None: ...

    async def delete(self, call_id: str) -> None: ...

    async def all(self) -> list[CallCheckpoint]: ...

    async def close(self) -> None: ...


def _parse(raw: str | bytes, where: str) -> CallCheckpoint | None:
    try:
        return CallCheckpoint.model_validate_json(raw)
    except PydanticValidationError as err:
        log.error("unreadable checkpoint %s: %s", where, err.errors()[0]["msg"])
        return None


class DirectoryCheckpoints:
    """Checkpoints as files under one directory (see the module docstring)."""

    backend = "directory"

    def __init__(self, directory: Path, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.directory = directory
        self._ttl_s = ttl_s

    def _path(self, call_id: str) -> Path:
        # call ids come from stream parameters: never a path of their own
        return self.directory / (hashlib.sha256(call_id.encode()).hexdigest()[:32] + ".json")

    async def save(self, checkpoint: CallCheckpoint) -> None:
        await asyncio.to_thread(self._write, self._path(checkpoint.call_id),
                                checkpoint.model_dump_json())

    def _write(self, path: Path, data: str) -> None:
        aside = path.with_suffix(".new")
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            with aside.open("w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(aside, path)
        except OSError as err:
            raise StoreError(f"cannot write the checkpoint {path}: {err.strerror}") from err

    async def load(self, call_id: str) -> CallCheckpoint | None:
        return await asyncio.to_thread(self._read, self._path(call_id))

    def _read(self, path: Path) -> CallCheckpoint | None:
        try:
            if time.time() - path.stat().st_mtime > self._ttl_s:
                path.unlink(missing_ok=True)  # expired
                return None
            return _parse(path.read_bytes(), str(path))
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StoreError(f"cannot read the checkpoint {path}: {err.strerror}") from err

    async def delete(self, call_id: str) -> None:
        try:
            await asyncio.to_thread(self._path(call_id).unlink, missing_ok=True)
        except OSError as err:
            raise StoreError(f"cannot remove a checkpoint: {err.strerror}") from err

    async def all(self) -> list[CallCheckpoint]:
        def scan() -> list[CallCheckpoint]:
            if not self.directory.is_dir():
                return []
            found = (self._read(p) for p in sorted(self.directory.glob("*.json")))
            return [c for c in found if c is not None]

        return await asyncio.to_thread(scan)

    async def close(self) -> None:
        return None


class RedisCheckpoints:
    """Checkpoints as Redis keys with a TTL (see the module docstring)."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "reautod:", ttl_s: float = DEFAULT_TTL_S,
                 timeout_s: float = 2.0) -> None:
        self._redis = aioredis.from_url(url, socket_timeout=timeout_s,
                                        socket_connect_timeout=timeout_s, decode_responses=True)
        self._prefix = f"{prefix}checkpoint:"
        self._ttl_s = max(1, round(ttl_s))

    async def _run(self, op: Any) -> Any:
        try:
            return await op
        except (RedisError, OSError) as err:
            raise UnavailableError(f"redis: {err}") from err

    async def save(self, checkpoint: CallCheckpoint) -> None:
        await self._run(self._redis.set(self._prefix + checkpoint.call_id,
                                        checkpoint.model_dump_json(), ex=self._ttl_s))

    async def load(self, call_id: str) -> CallCheckpoint | None:
        raw = await self._run(self._redis.get(self._prefix + call_id))
        return None if raw is None else _parse(raw, self._prefix + call_id)

    async def delete(self, call_id: str) -> None:
        await self._run(self._redis.delete(self._prefix + call_id))

    async def all(self) -> list[CallCheckpoint]:
        try:
            keys = [key async for key in self._redis.scan_iter(match=self._prefix + "*")]
        except (RedisError, OSError) as err:
            raise UnavailableError(f"redis: {err}") from err
        if not keys:
            return []
        values = await self._run(self._redis.mget(keys))
        found = (_parse(raw, key) for key, raw in zip(keys, values, strict=True) if raw)
        return [c for c in found if c is not None]

    async def close(self) -> None:
        await self._redis.aclose()


def open_checkpoints(redis_url: str | None, state_dir: Path, *,
                     prefix: str = "reautod:") -> CheckpointStore:
    """Redis when configured, else files in the state directory."""
    if redis_url:
        return RedisCheckpoints(redis_url, prefix=prefix)
    return DirectoryCheckpoints(state_dir / "checkpoints")


def utcnow() -> datetime:
    return datetime.now(UTC)
