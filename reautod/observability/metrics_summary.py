"""Key figures from the metrics registry, for `reautoctl metrics` / `top` (method `metrics.summary`).

Quantiles are estimated from the histogram buckets the way PromQL's `histogram_quantile` does, over
everything observed since the daemon started (Prometheus + Grafana do the windowed view).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from prometheus_client import CollectorRegistry

from reautod.methods import Method
from reautod.observability.metrics import ENGINES, Metrics
from reautod.observability.results import (
    BusinessFigures,
    CallFigures,
    EngineFigures,
    GpuMemory,
    LatencySummary,
    MetricsSummary,
    ProcessFigures,
    TurnLatencies,
)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Estimate quantile `q` from cumulative (upper bound, count) buckets, as PromQL does.

    Linear interpolation inside the bucket that holds the rank; the +Inf bucket answers with the
    highest finite bound. None when there are no observations.
    """
    if not buckets:
        return None
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower_bound
            if count == lower_count:
                return upper
            return lower_bound + (upper - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper, count
    return buckets[-1][0]


def summarize(registry: CollectorRegistry) -> MetricsSummary:
    """Key figures from the registry (collects it: call off the event loop)."""
    histograms: dict[str, dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]] = {}
    counts: dict[str, float] = {}
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = dict(sample.labels)
            if sample.name.endswith("_bucket"):
                le = float(labels.pop("le"))
                key = tuple(sorted(labels.items()))
                histograms.setdefault(family.name, {}).setdefault(key, []).append((le, sample.value))
            elif sample.name.endswith("_count") and family.type == "histogram" and not labels:
                counts[family.name] = sample.value
            elif family.type in ("counter", "gauge") and not sample.name.endswith("_created"):
                values.setdefault(sample.name, {})[tuple(sorted(labels.items()))] = sample.value

    def latency(name: str, key: tuple[tuple[str, str], ...] = ()) -> LatencySummary:
        buckets = histograms.get(name, {}).get(key, [])
        total = int(max((c for _, c in buckets), default=0))
        return LatencySummary(
            count=total,
            p50_s=histogram_quantile(0.5, buckets),
            p95_s=histogram_quantile(0.95, buckets),
            p99_s=histogram_quantile(0.99, buckets),
        )

    def by_label(name: str, label: str) -> dict[str, float]:
        return {dict(k)[label]: v for k, v in sorted(values.get(name, {}).items()) if k}

    def scalar(name: str) -> float:
        return sum(values.get(name, {}).values())

    def engine(name: str) -> EngineFigures:
        key = (("engine", name),)
        return EngineFigures(
            queue_depth=values.get("reautod_engine_queue_depth", {}).get(key, 0.0),
            requests=values.get("reautod_engine_requests_total", {}).get(key, 0.0),
            failures=values.get("reautod_engine_failures_total", {}).get(key, 0.0),
            cancelled=values.get("reautod_engine_cancelled_total", {}).get(key, 0.0),
            rejected=values.get("reautod_engine_rejected_total", {}).get(key, 0.0),
            queue_wait=latency("reautod_engine_queue_wait_seconds", key),
            compute=latency("reautod_engine_compute_seconds", key))

    gpus = [
        GpuMemory(gpu=dict(k).get("gpu", "?"), used_bytes=v,
                  free_bytes=values.get("reautod_gpu_memory_free_bytes", {}).get(k))
        for k, v in sorted(values.get("reautod_gpu_memory_used_bytes", {}).items())
    ]
    return MetricsSummary(
        latency=TurnLatencies(
            transcript=latency("reautod_turn_transcript_seconds"),
            first_token=latency("reautod_turn_first_token_seconds"),
            first_audio=latency("reautod_turn_first_audio_seconds"),
            voice_to_voice=latency("reautod_turn_voice_to_voice_seconds"),
            barge_in_clear=latency("reautod_barge_in_clear_seconds")),
        engines={name: engine(name) for name in ENGINES},
        calls=CallFigures(
            live=scalar("reautod_live_calls"),
            by_outcome=by_label("reautod_calls_total", "outcome"),
            amd=by_label("reautod_amd_results_total", "result"),
            dial_blocked=by_label("reautod_dial_attempts_blocked_total", "reason"),
            webhook_signature_failures=scalar("reautod_webhook_signature_failures_total"),
            media_frames_dropped=by_label("reautod_media_frames_dropped_total", "reason")),
        business=BusinessFigures(
            qualified_leads=scalar("reautod_qualified_leads_total"),
            appointments_booked=scalar("reautod_appointments_booked_total"),
            cost_dollars=scalar("reautod_cost_dollars_total"),
            calls_costed=counts.get("reautod_call_cost_dollars", 0.0)),
        process=ProcessFigures(
            event_loop_lag_s=scalar("reautod_event_loop_lag_seconds"),
            open_sockets=by_label("reautod_open_sockets", "kind"),
            control_events_dropped=scalar("reautod_control_events_dropped_total")),
        gpu=gpus)


def metrics_methods(metrics: Metrics) -> list[Method]:
    """Control methods this part serves: `metrics.summary` -> `summarize(...)` (collected in a thread)."""

    async def summary(_params: Any) -> MetricsSummary:
        # Collecting runs custom collectors (NVML for the GPU): keep it off the event loop.
        return await asyncio.to_thread(summarize, metrics.registry)

    return [Method("metrics.summary", summary, summary="Key figures from the metrics registry")]
