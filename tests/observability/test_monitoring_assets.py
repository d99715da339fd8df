from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from reautod.observability.gpu import GpuCollector
from reautod.observability.metrics import Metrics, sample_names

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
METRIC_NAME = re.compile(r"\breautod_[a-z0-9_]+\b")


def registry_names() -> set[str]:
    metrics = Metrics()
    metrics.register(GpuCollector(None))  # the daemon always registers it; absent GPU here
    return sample_names(metrics.registry)


def exprs_in_dashboard(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "query") and isinstance(v, str)]
        return found + [e for v in node.values() for e in exprs_in_dashboard(v)]
    if isinstance(node, list):
        return [e for v in node for e in exprs_in_dashboard(v)]
    return []


def test_every_metric_in_the_alert_rules_exists() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"ReautodEventLoopLag", "ReautodVoiceToVoiceSlow", "ReautodEngineFailures",
            "ReautodWebhookSignatureFailures"} <= alerts
    referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert "reautod_turn_voice_to_voice_seconds_bucket" in referenced
    assert referenced - registry_names() == set()


def test_every_metric_in_the_dashboard_exists() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = exprs_in_dashboard(dashboard)
    assert len(exprs) >= 20
    referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert len(referenced) >= 20
    assert referenced - registry_names() == set()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_check_catches_a_misspelt_metric() -> None:
    names = registry_names()
    assert "reautod_turn_voice_to_voice_seconds_bucket" in names
    assert "reautod_turn_voice_to_voice_bucket" not in names
    assert "reautod_engine_failures" not in names  # counters are only exposed with _total
