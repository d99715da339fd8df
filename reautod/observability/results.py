"""Typed results of the observability part's control methods: `metrics.summary`.

`summarize` builds them from the metrics registry; `reautoctl metrics` and `reautoctl top` parse
them. Counts are floats: Prometheus counters and gauges are.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class LatencySummary(_Result):
    """Percentiles of one histogram since start-up, estimated as PromQL's histogram_quantile."""

    count: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


class TurnLatencies(_Result):
    """A turn's stages, each counted from the end of the caller's speech; and barge-in."""

    transcript: LatencySummary
    first_token: LatencySummary
    first_audio: LatencySummary
    voice_to_voice: LatencySummary
    barge_in_clear: LatencySummary


class EngineFigures(_Result):
    """One engine's queue and request counters."""

    queue_depth: float
    requests: float
    failures: float
    cancelled: float
    rejected: float
    queue_wait: LatencySummary
    compute: LatencySummary


class CallFigures(_Result):
    live: float
    by_outcome: dict[str, float]
    amd: dict[str, float]
    dial_blocked: dict[str, float] = Field(description="dials refused, by reason")
    webhook_signature_failures: float
    media_frames_dropped: dict[str, float] = Field(description="by reason")


class BusinessFigures(_Result):
    qualified_leads: float
    appointments_booked: float
    cost_dollars: float
    calls_costed: float


class ProcessFigures(_Result):
    event_loop_lag_s: float
    open_sockets: dict[str, float] = Field(description="by kind")
    control_events_dropped: float


class GpuMemory(_Result):
    gpu: str
    used_bytes: float
    free_bytes: float | None


class MetricsSummary(_Result):
    """`metrics.summary`: key figures from the metrics registry since start-up."""

    latency: TurnLatencies
    engines: dict[str, EngineFigures] = Field(description="by engine: stt, llm, tts")
    calls: CallFigures
    business: BusinessFigures
    process: ProcessFigures
    gpu: list[GpuMemory]
