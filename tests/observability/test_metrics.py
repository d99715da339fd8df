from __future__ import annotations

import itertools

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from reautod.engines.base import RequestTiming
from reautod.errors import ValidationError
from reautod.observability.metrics import TURN_LATENCY_BUCKETS, Metrics, sample_names


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_family_follows_prometheus_conventions() -> None:
    metrics = Metrics()
    families = list(metrics.registry.collect())
    assert len(families) > 20
    for family in families:
        assert family.name.startswith("reautod_"), family.name
        assert not family.name.endswith("_total"), "prometheus_client adds _total to counters"
        for sample in family.samples:
            # bounded labels only: nothing that could hold a call id or a phone number
            assert set(sample.labels) <= {"engine", "outcome", "result", "reason", "kind", "le",
                                          "gpu", "version", "service", "period", "tier",
                                          "channel", "state"}, sample
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if "latency" in family.documentation or family.name.startswith("reautod_turn_"):
            assert family.name.endswith("_seconds")


def test_turn_buckets_resolve_the_100_to_1000_ms_range() -> None:
    inside = [b for b in TURN_LATENCY_BUCKETS if 0.1 <= b <= 1.0]
    assert len(inside) >= 10
    assert max(b2 - b1 for b1, b2 in itertools.pairwise(inside)) <= 0.1 + 1e-9


def test_labelled_series_exist_at_zero_before_anything_happens() -> None:
    metrics = Metrics()
    for engine in ("stt", "llm", "tts"):
        assert value(metrics, "reautod_engine_failures_total", engine=engine) == 0
    for reason in ("window", "dnc", "budget"):
        assert value(metrics, "reautod_dial_attempts_blocked_total", reason=reason) == 0


def test_helpers_update_the_right_series() -> None:
    metrics = Metrics()
    metrics.observe_turn({"transcript_s": 0.18, "first_token_s": 0.41, "voice_to_voice_s": 0.72,
                          "first_audio": None})
    metrics.observe_engine_request("llm", RequestTiming(queue_wait_s=0.02, compute_s=0.3))
    metrics.engine_failed("stt")
    metrics.engine_cancelled("tts")
    metrics.engine_rejected("llm")
    metrics.set_engine_queue_depth("llm", 3)
    metrics.call_ended("qualified", cost_micros=123_000)
    metrics.amd_result("machine_end_beep")
    metrics.dial_blocked("dnc")
    metrics.media_frame_dropped("malformed")
    metrics.cost_spent(2_500_000)
    metrics.socket_opened("control")
    metrics.socket_opened("control")
    metrics.socket_closed("control")
    metrics.events_dropped(4)
    metrics.webhook_signature_failures_total.inc()
    metrics.live_calls.set(2)

    assert value(metrics, "reautod_turn_voice_to_voice_seconds_bucket", le="0.7") == 0
    assert value(metrics, "reautod_turn_voice_to_voice_seconds_bucket", le="0.8") == 1
    assert value(metrics, "reautod_turn_transcript_seconds_count") == 1
    assert value(metrics, "reautod_turn_first_audio_seconds_count") == 0
    assert value(metrics, "reautod_engine_requests_total", engine="llm") == 1
    assert value(metrics, "reautod_engine_compute_seconds_sum", engine="llm") == pytest.approx(0.3)
    assert value(metrics, "reautod_engine_queue_wait_seconds_count", engine="llm") == 1
    assert value(metrics, "reautod_engine_failures_total", engine="stt") == 1
    assert value(metrics, "reautod_engine_cancelled_total", engine="tts") == 1
    assert value(metrics, "reautod_engine_rejected_total", engine="llm") == 1
    assert value(metrics, "reautod_engine_queue_depth", engine="llm") == 3
    assert value(metrics, "reautod_calls_total", outcome="qualified") == 1
    assert value(metrics, "reautod_call_cost_dollars_sum") == pytest.approx(0.123)
    assert value(metrics, "reautod_amd_results_total", result="machine_end_beep") == 1
    assert value(metrics, "reautod_dial_attempts_blocked_total", reason="dnc") == 1
    assert value(metrics, "reautod_media_frames_dropped_total", reason="malformed") == 1
    assert value(metrics, "reautod_cost_dollars_total") == pytest.approx(2.5)
    assert value(metrics, "reautod_open_sockets", kind="control") == 1
    assert value(metrics, "reautod_control_events_dropped_total") == 4
    assert value(metrics, "reautod_webhook_signature_failures_total") == 1
    assert value(metrics, "reautod_live_calls") == 2


@pytest.mark.parametrize(
    "bad",
    [
        lambda m: m.engine_failed("whisper"),
        lambda m: m.dial_blocked("+15551234567"),
        lambda m: m.call_ended("CA0123456789"),
        lambda m: m.amd_result("robot"),
        lambda m: m.socket_opened("http"),
        lambda m: m.observe_turn({"think_time": 1.0}),
    ],
)
def test_label_values_outside_the_fixed_sets_are_refused(bad: object) -> None:
    metrics = Metrics()
    before = len(sample_names(metrics.registry))
    with pytest.raises(ValidationError):
        bad(metrics)  # type: ignore[operator]
    assert len(sample_names(metrics.registry)) == before


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.live_calls.set(5)
    assert b.registry.get_sample_value("reautod_live_calls") == 0
    shared = CollectorRegistry()
    Metrics(shared)
    with pytest.raises(ValueError):  # duplicate names in one registry are a programming error
        Metrics(shared)


def test_exposition_and_sample_names() -> None:
    metrics = Metrics()
    metrics.set_version("1.2.3")
    text = generate_latest(metrics.registry).decode()
    assert 'reautod_build_info{version="1.2.3"} 1.0' in text
    names = sample_names(metrics.registry)
    for name in ("reautod_turn_voice_to_voice_seconds_bucket", "reautod_calls_total",
                 "reautod_engine_compute_seconds_count", "reautod_event_loop_lag_seconds"):
        assert name in names
    assert "reautod_calls" not in names
