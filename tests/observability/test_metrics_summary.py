from __future__ import annotations

import pytest

from reautod.engines.base import RequestTiming
from reautod.observability.metrics import Metrics
from reautod.observability.metrics_summary import histogram_quantile, metrics_methods, summarize
from reautod.observability.results import MetricsSummary


def test_histogram_quantile_interpolates_like_promql() -> None:
    buckets = [(0.1, 0.0), (0.2, 10.0), (0.5, 20.0), (float("inf"), 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.2)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.35)
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.5, []) is None
    # everything above the last finite bound: answer with that bound
    assert histogram_quantile(0.99, [(1.0, 0.0), (float("inf"), 4.0)]) == 1.0


def test_summary_reports_the_key_figures() -> None:
    metrics = Metrics()
    for v2v in (0.42, 0.44, 0.46, 0.48, 0.95):
        metrics.observe_turn({"voice_to_voice": v2v})
    metrics.observe_engine_request("stt", RequestTiming(queue_wait_s=0.0, compute_s=0.12))
    metrics.engine_failed("tts")
    metrics.call_ended("voicemail")
    metrics.dial_blocked("window")
    metrics.live_calls.set(3)
    metrics.event_loop_lag_seconds.set(0.004)
    summary = summarize(metrics.registry).model_dump(mode="json")
    v2v = summary["latency"]["voice_to_voice"]
    assert v2v["count"] == 5
    assert 0.4 <= v2v["p50_s"] <= 0.5
    assert 0.9 <= v2v["p95_s"] <= 1.0
    assert summary["latency"]["transcript"] == {"count": 0, "p50_s": None, "p95_s": None,
                                                 "p99_s": None}
    assert summary["engines"]["stt"]["requests"] == 1
    assert summary["engines"]["stt"]["compute"]["count"] == 1
    assert summary["engines"]["tts"]["failures"] == 1
    assert summary["calls"]["live"] == 3
    assert summary["calls"]["by_outcome"]["voicemail"] == 1
    assert summary["calls"]["dial_blocked"] == {"budget": 0, "dnc": 0, "window": 1}
    assert summary["process"]["event_loop_lag_s"] == pytest.approx(0.004)
    assert summary["gpu"] == []


async def test_metrics_summary_method_answers_from_the_registry() -> None:
    metrics = Metrics()
    metrics.live_calls.set(7)
    (method,) = metrics_methods(metrics)
    assert method.name == "metrics.summary"
    result = await method.handler(method.params())
    assert isinstance(result, MetricsSummary) and method.result is MetricsSummary
    assert result.calls.live == 7
