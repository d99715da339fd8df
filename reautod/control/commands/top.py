"""`reautoctl top`: a one-screen summary that refreshes, for terminals without the TUI.

Each refresh reads status, health, calls.list and metrics.summary over one connection; a method
the daemon does not have (yet) is left out of the screen rather than failing it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from datetime import UTC, datetime
from typing import Any

from reautod.control.client import ControlClient
from reautod.control.commands.metrics import ms
from reautod.control.context import CliContext, parse_result, table
from reautod.control.results import DaemonStatus, HealthReport
from reautod.errors import NotRunningError, ReautodError
from reautod.observability.results import MetricsSummary
from reautod.pipeline.results import LiveCallList

METHODS = ("status", "health", "calls.list", "metrics.summary")
CLEAR = "\x1b[H\x1b[2J"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("top", help="refreshing one-screen summary (calls, health, latency)")
    parser.add_argument("--once", action="store_true", help="print one screen and exit")
    parser.add_argument("--interval", type=float, default=2.0, metavar="S",
                        help="seconds between refreshes (default 2)")
    parser.set_defaults(func=run)


async def snapshot(ctx: CliContext) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with ControlClient(ctx.socket_path, timeout=10.0) as client:
        for method in METHODS:
            try:
                results[method] = await client.call(method, {})
            except ReautodError as err:
                if err.code != "unknown_method":
                    raise
                results[method] = None
    return results


def _duration(started_at: datetime, now: datetime) -> str:
    seconds = int((now - started_at).total_seconds())
    minutes, secs = divmod(max(0, seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def _clip(text: Any, width: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def render(results: dict[str, Any], now: datetime | None = None, width: int = 100) -> str:
    now = now or datetime.now(UTC)
    status = parse_result(DaemonStatus, "status", results.get("status"))
    out = [
        f"reautod {status.version}  {status.state}  pid {status.pid}  "
        f"live calls {status.live_calls}  {now.strftime('%H:%M:%S')} UTC"
    ]
    if results.get("health") is not None:
        health = parse_result(HealthReport, "health", results["health"])
        parts = [f"{name} {'ok' if c.ok else 'FAIL'}" for name, c in health.checks.items()]
        out.append(f"health: {'ok' if health.ok else 'DEGRADED'}  ({', '.join(parts)})")
        out.extend(f"  {name}: {c.detail}" for name, c in health.checks.items() if not c.ok)
    if results.get("metrics.summary") is not None:
        summary = parse_result(MetricsSummary, "metrics.summary", results["metrics.summary"])
        v2v = summary.latency.voice_to_voice
        engines = summary.engines
        queues = " ".join(f"{n}={e.queue_depth:g}" for n, e in engines.items())
        failures = sum(e.failures for e in engines.values())
        out.append(f"voice-to-voice p50 {ms(v2v.p50_s)}  p95 {ms(v2v.p95_s)}  "
                   f"({v2v.count} turns)  loop lag {ms(summary.process.event_loop_lag_s)}")
        out.append(f"engine queues {queues or '-'}  failures {failures:g}")
    calls = results.get("calls.list")
    if calls is not None:
        rows = parse_result(LiveCallList, "calls.list", calls).calls
        utterance_width = max(24, width - 60)
        out.append("")
        out.append(table(
            ["lead", "campaign", "state", "time", "v2v", "last utterance"],
            [(_clip(c.lead_name, 18), _clip(c.campaign or "-", 14), c.state.value,
              _duration(c.started_at, now), ms(c.last_voice_to_voice_s),
              _clip(c.last_utterance, utterance_width))
             for c in rows],
        ) if rows else "no live calls")
    return "\n".join(out)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.once:
        results = asyncio.run(snapshot(ctx))
        ctx.emit(results, lambda r: render(r, width=shutil.get_terminal_size().columns))
        return 0
    while True:
        try:
            results = asyncio.run(snapshot(ctx))
            screen = render(results, width=shutil.get_terminal_size().columns)
        except NotRunningError as err:
            screen = f"reautod: {err.message}; retrying every {args.interval:g} s"
        if ctx.json and not screen.startswith("reautod: "):
            ctx.out.write(json.dumps(results, separators=(",", ":"), default=str) + "\n")
        else:
            ctx.out.write(CLEAR + screen + "\n")
        ctx.out.flush()
        time.sleep(max(0.2, args.interval))
