"""reautoctl top / events / metrics against a real ControlServer (in a thread: the CLI runs its own
event loop) serving a real Metrics registry."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from reautod.call_events import CallState
from reautod.control.commands import events as events_cmd
from reautod.control.commands import metrics as metrics_cmd
from reautod.control.commands import top as top_cmd
from reautod.control.context import CliContext
from reautod.engines.base import RequestTiming
from reautod.errors import NotRunningError
from reautod.observability.metrics import Metrics
from reautod.observability.metrics_summary import metrics_methods
from tests.tui.fake_daemon import FakeDaemon, ThreadedDaemon, live_call, recorded_events


def parse(argv: list[str]) -> argparse.Namespace:
    # the same top-level options as reautod.control.cli.build_parser
    parser = argparse.ArgumentParser(prog="reautoctl")
    parser.add_argument("--config")
    parser.add_argument("--socket")
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (top_cmd, events_cmd, metrics_cmd):
        module.register(sub)
    return parser.parse_args(argv)


def run(argv: list[str]) -> tuple[int, str]:
    args = parse(argv)
    out = io.StringIO()
    ctx = CliContext.from_args(args)
    ctx.out = out
    code = args.func(args, ctx)
    return code, out.getvalue()


@pytest.fixture
def metrics() -> Metrics:
    metrics = Metrics()
    for v2v in (0.4, 0.45, 0.5, 0.55, 1.4):
        metrics.observe_turn({"voice_to_voice": v2v, "transcript": 0.15})
    metrics.observe_engine_request("llm", RequestTiming(queue_wait_s=0.01, compute_s=0.25))
    metrics.engine_failed("tts")
    metrics.call_ended("qualified", cost_micros=80_000)
    metrics.cost_spent(80_000)
    metrics.dial_blocked("dnc")
    metrics.live_calls.set(1)
    return metrics


@pytest.fixture
def served(metrics: Metrics) -> Iterator[tuple[ThreadedDaemon, Path]]:
    path = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp")) / "control.sock"
    fake = FakeDaemon(path, extra_methods=metrics_methods(metrics))
    fake.calls = [live_call("CA1", "Sam Ortiz", "solar-q4", CallState.SPEAKING,
                            "2026-11-21T09:57:00+00:00", last_utterance="How much would it cost?",
                            last_voice_to_voice_s=0.58)]
    fake.fail_check("redis", "connection refused")
    with ThreadedDaemon(fake) as threaded:
        yield threaded, path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_metrics_prints_the_key_figures(served: tuple[ThreadedDaemon, Path]) -> None:
    _, path = served
    code, out = run(["--socket", str(path), "metrics"])
    assert code == 0
    lines = out.splitlines()
    v2v = next(line for line in lines if line.startswith("-> first audio sent"))
    assert v2v.split()[-1] == "5"  # turns
    assert "calls by outcome            qualified 1" in out
    assert "dials blocked               dnc 1" in out
    assert "spent                       $0.08" in out
    llm = next(line for line in lines if line.startswith("llm "))
    assert llm.split()[:6] == ["llm", "0", "1", "0", "0", "0"]
    tts = next(line for line in lines if line.startswith("tts "))
    assert tts.split()[3] == "1"  # failures


def test_metrics_json_is_the_summary(served: tuple[ThreadedDaemon, Path]) -> None:
    _, path = served
    code, out = run(["--socket", str(path), "--json", "metrics"])
    data = json.loads(out)
    assert code == 0
    assert data["latency"]["voice_to_voice"]["count"] == 5
    assert data["calls"]["live"] == 1


def test_top_once(served: tuple[ThreadedDaemon, Path]) -> None:
    _, path = served
    code, out = run(["--socket", str(path), "top", "--once"])
    assert code == 0
    assert "ready" in out and "live calls 1" in out
    assert "health: DEGRADED" in out and "redis: connection refused" in out
    assert "(5 turns)" in out
    assert "failures 1" in out
    row = next(line for line in out.splitlines() if line.startswith("Sam Ortiz"))
    assert "speaking" in row and "580 ms" in row and "How much would it cost?" in row


def test_top_render_without_optional_methods() -> None:
    now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    status = FakeDaemon(Path("/tmp/none.sock")).status.model_copy(update={"pid": 7})
    screen = top_cmd.render({"status": status.model_dump(mode="json"),
                             "health": None, "calls.list": {"calls": []},
                             "metrics.summary": None}, now=now)
    assert screen.splitlines()[0] == "reautod 0.1.0  ready  pid 7  live calls 0  10:00:00 UTC"
    assert screen.splitlines()[-1] == "no live calls"


def test_top_without_a_daemon_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(NotRunningError):
        run(["--socket", str(tmp_path / "none.sock"), "top", "--once"])


def publish_when_subscribed(threaded: ThreadedDaemon, events: list[tuple[str, BaseModel]]) -> threading.Thread:
    def go() -> None:
        for _ in range(1000):
            if threaded.subscribers:
                break
            threading.Event().wait(0.01)
        for event in events:
            threaded.publish(*event)

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_events_tails_the_stream(served: tuple[ThreadedDaemon, Path]) -> None:
    threaded, path = served
    recorded = recorded_events()
    publisher = publish_when_subscribed(threaded, recorded[:3])
    code, out = run(["--socket", str(path), "events", "--count", "3"])
    publisher.join()
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[1] == "call.started"
    assert 'lead_name="Dana Whitfield"' in lines[0]
    assert "state=listening" in lines[1]
    assert lines[2].split()[1] == "turn"


def test_events_json_and_topic_filter(served: tuple[ThreadedDaemon, Path]) -> None:
    threaded, path = served
    publisher = publish_when_subscribed(threaded, recorded_events())
    code, out = run(["--socket", str(path), "events", "turn", "--json", "--count", "2"])
    publisher.join()
    assert code == 0
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["event"] for m in messages] == ["turn", "turn"]  # call.* and barge_in filtered out
    assert messages[1]["data"]["text"] == "Sure, what is this about?"
    assert set(messages[0]) == {"event", "ts", "data"}
