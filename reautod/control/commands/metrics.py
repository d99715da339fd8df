"""`reautoctl metrics`: key figures from the daemon's metrics registry (method `metrics.summary`).

Fetched over the control socket rather than HTTP /metrics: it works with `[metrics] port = 0`,
with the metrics endpoint bound to another address, and under the socket's access control.
"""

from __future__ import annotations

import argparse
from typing import Any

from reautod.control.context import CliContext, key_values, table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("metrics", help="key figures: latency percentiles, engines, calls, cost")
    parser.set_defaults(func=run)


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


STAGES = [
    ("transcript", "end of speech -> transcript"),
    ("first_token", "-> first LLM token"),
    ("first_audio", "-> first TTS audio"),
    ("voice_to_voice", "-> first audio sent (voice-to-voice)"),
    ("barge_in_clear", "barge-in -> clear sent"),
]


def render_latency(summary: dict[str, Any]) -> str:
    latency = summary.get("latency", {})
    rows = []
    for key, label in STAGES:
        s = latency.get(key) or {}
        rows.append((label, ms(s.get("p50_s")), ms(s.get("p95_s")), ms(s.get("p99_s")),
                     s.get("count", 0)))
    return table(["turn latency (since start)", "p50", "p95", "p99", "turns"], rows)


def render_engines(summary: dict[str, Any]) -> str:
    rows = []
    for name, e in (summary.get("engines") or {}).items():
        rows.append((name, _count(e.get("queue_depth")), _count(e.get("requests")),
                     _count(e.get("failures")), _count(e.get("cancelled")),
                     _count(e.get("rejected")), ms((e.get("queue_wait") or {}).get("p95_s")),
                     ms((e.get("compute") or {}).get("p95_s"))))
    return table(["engine", "queue", "requests", "failures", "cancelled", "rejected",
                  "wait p95", "compute p95"], rows)


def _nonzero(counts: dict[str, float] | None) -> str:
    items = [f"{k} {v:g}" for k, v in (counts or {}).items() if v]
    return ", ".join(items) or "none"


def render(summary: dict[str, Any]) -> str:
    calls = summary.get("calls") or {}
    business = summary.get("business") or {}
    process = summary.get("process") or {}
    gpus = summary.get("gpu") or []
    gpu = ", ".join(
        f"gpu{g['gpu']} {g['used_bytes'] / 2**30:.1f} GiB used, "
        f"{(g.get('free_bytes') or 0) / 2**30:.1f} GiB free" for g in gpus
    ) or "no GPU"
    figures = key_values([
        ("live calls", _count(calls.get("live"))),
        ("calls by outcome", _nonzero(calls.get("by_outcome"))),
        ("AMD results", _nonzero(calls.get("amd"))),
        ("dials blocked", _nonzero(calls.get("dial_blocked"))),
        ("webhook signature failures", _count(calls.get("webhook_signature_failures"))),
        ("media frames dropped", _nonzero(calls.get("media_frames_dropped"))),
        ("qualified leads", _count(business.get("qualified_leads"))),
        ("appointments booked", _count(business.get("appointments_booked"))),
        ("spent", f"${business.get('cost_dollars') or 0:.2f}"),
        ("event-loop lag", ms(process.get("event_loop_lag_s"))),
        ("open sockets", _nonzero(process.get("open_sockets"))),
        ("events dropped (lagged)", _count(process.get("control_events_dropped"))),
        ("GPU memory", gpu),
    ])
    return "\n\n".join([render_latency(summary), render_engines(summary), figures])


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.call("metrics.summary"), render)
    return 0
