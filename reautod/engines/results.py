"""Typed results of the engines' control methods: `engines.status`.

Built from the engines' own dataclasses (`EngineHealth`, `EngineStats`), which stay the engines'
internal records; these models are the wire contract.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reautod.engines.base import EngineState


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class EngineCounters(_Result):
    """One engine's scheduler counters since start-up (`EngineStats`)."""

    requests: int = Field(description="accepted into the queue")
    failures: int = Field(description="raised or timed out")
    cancelled: int = Field(description="the caller went away before the reply was complete")
    rejected: int = Field(description="queue full")
    timeouts: int = Field(description="also counted in failures")
    queue_depth: int = Field(description="waiting now, not yet started")
    in_flight: int
    completed: int
    queue_wait_s_total: float
    compute_s_total: float
    extra: dict[str, float] = Field(description="engine-specific counters")


class EngineStatus(_Result):
    """One engine: its model, its state and why, and its counters."""

    name: Literal["stt", "llm", "tts"]
    state: EngineState
    model: str | None
    detail: str = Field(description="for missing: the command that fixes it; for failed: the "
                                    "last error")
    queue_depth: int
    failures: int
    stats: EngineCounters


class LlmEndpointStatus(_Result):
    """One LLM pool endpoint in `engines.status`."""

    name: str
    url: str
    model: str
    state: Literal["unknown", "up", "down"]
    circuit: str = Field(description="closed, open or half_open")
    in_flight: int = Field(description="replies streaming now")
    max_concurrent: int
    requests: int
    failures: int
    cancelled: int
    last_error: str


class NamedModelStatus(_Result):
    """A named language model in `engines.status` (reautod.engines.switch)."""

    name: str
    where: Literal["local", "pool"] = Field(description="local: an [llm_models] GGUF loaded in "
                                            "this process on first use; pool: served by the "
                                            "[llm_pool] endpoints of that model")
    loaded: bool = Field(description="a local model loaded now (false for the pool's: their "
                                     "servers hold them)")


class EnginesReport(_Result):
    """`engines.status`: whether every engine is loaded, on which device, and each engine."""

    ready: bool
    device: str
    engines: list[EngineStatus]
    llm_endpoints: list[LlmEndpointStatus] = Field(
        default_factory=list, description="with an LLM pool, each endpoint (else empty)")
    named_models: list[NamedModelStatus] = Field(
        default_factory=list, description="the models stages and tasks can name")
