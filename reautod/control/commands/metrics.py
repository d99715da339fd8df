"""`reautoctl metrics`: key figures from the daemon's metrics registry (method `metrics.summary`).

Fetched over the control socket rather than HTTP /metrics: it works with `[metrics] port = 0`,
with the metrics endpoint bound to another address, and under the socket's access control.
"""

from __future__ import annotations

import argparse

from reautod.control.context import CliContext, key_values, table
from reautod.observability.results import LatencySummary, MetricsSummary


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


def render_latency(summary: MetricsSummary) -> str:
    rows = []
    for key, label in STAGES:
        s: LatencySummary = getattr(summary.latency, key)
        rows.append((label, ms(s.p50_s), ms(s.p95_s), ms(s.p99_s), s.count))
    return table(["turn latency (since start)", "p50", "p95", "p99", "turns"], rows)


def render_engines(summary: MetricsSummary) -> str:
    rows = [(name, _count(e.queue_depth), _count(e.requests), _count(e.failures),
             _count(e.cancelled), _count(e.rejected), ms(e.queue_wait.p95_s), ms(e.compute.p95_s))
            for name, e in summary.engines.items()]
    return table(["engine", "queue", "requests", "failures", "cancelled", "rejected",
                  "wait p95", "compute p95"], rows)


def _nonzero(counts: dict[str, float]) -> str:
    items = [f"{k} {v:g}" for k, v in counts.items() if v]
    return ", ".join(items) or "none"


def render(summary: MetricsSummary) -> str:
    calls, business, process = summary.calls, summary.business, summary.process
    gpu = ", ".join(
        f"gpu{g.gpu} {g.used_bytes / 2**30:.1f} GiB used, "
        f"{(g.free_bytes or 0) / 2**30:.1f} GiB free" for g in summary.gpu
    ) or "no GPU"
    figures = key_values([
        ("live calls", _count(calls.live)),
        ("calls by outcome", _nonzero(calls.by_outcome)),
        ("AMD results", _nonzero(calls.amd)),
        ("dials blocked", _nonzero(calls.dial_blocked)),
        ("webhook signature failures", _count(calls.webhook_signature_failures)),
        ("media frames dropped", _nonzero(calls.media_frames_dropped)),
        ("qualified leads", _count(business.qualified_leads)),
        ("appointments booked", _count(business.appointments_booked)),
        ("spent", f"${business.cost_dollars:.2f}"),
        ("event-loop lag", ms(process.event_loop_lag_s)),
        ("open sockets", _nonzero(process.open_sockets)),
        ("events dropped (lagged)", _count(process.control_events_dropped)),
        ("GPU memory", gpu),
    ])
    return "\n\n".join([render_latency(summary), render_engines(summary), figures])


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(MetricsSummary, "metrics.summary"), render)
    return 0
