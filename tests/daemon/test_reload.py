"""SIGHUP reaches calls: after a reload the next call uses the new `agent.*` and `calls.*`, through
a real daemon (subprocess) and `reautoctl call simulate`; restart-only sections keep running."""

from __future__ import annotations

import json
import signal
import wave
from pathlib import Path
from typing import Any

import pytest

OLD_GREETING = "Hello from the old configuration."
NEW_GREETING = "Hello from the reloaded configuration."


def config(workdir: Path, models: Path, greeting: str, max_duration_s: float,
           metrics_port: int = 0) -> str:
    return (
        f'state_dir = "{workdir / "state"}"\n'
        f'[models]\ndir = "{models}"\nprofile = "test"\ndevice = "cpu"\n'
        f"[http]\nport = 0\n[metrics]\nport = {metrics_port}\n"
        f'[agent]\ngreeting = "{greeting}"\n'
        f"[calls]\nmax_duration_s = {max_duration_s}\n"
    )


def simulate(daemon: Any, socket: str) -> dict[str, Any]:
    """One simulated call whose lead stays silent (the test voice would make noise)."""
    quiet = daemon.workdir / "quiet.wav"
    with wave.open(str(quiet), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(8000))  # half a second of silence
    done = daemon.ctl("--socket", socket, "--json", "call", "simulate", "--fast",
                      "--lead-audio", str(quiet), timeout=180)
    assert done.returncode == 0, done.stderr + daemon.log()[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def agent_lines(result: dict[str, Any]) -> list[str]:
    return [t["text"] for t in result["turns"] if t["speaker"] == "agent"]


def reload(daemon: Any) -> None:
    seen = len(daemon.notify.messages)
    daemon.signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING=1", 10, after=seen)
    daemon.notify.wait_for("READY=1", 10, after=seen)


@pytest.mark.slow
def test_the_next_call_uses_reloaded_agent_and_calls_settings(
    daemon_factory: Any, test_models_dir: Path
) -> None:
    d = daemon_factory()
    d.config_path.write_text(config(d.workdir, test_models_dir, OLD_GREETING, 900))
    d.start()
    d.wait_ready()
    socket = str(d.socket_path)

    before = simulate(d, socket)
    assert agent_lines(before)[0] == OLD_GREETING
    assert before["simulator"]["ended_by"] == "hangup"  # the lead's script ran out first

    # a new greeting and a 2 s cap on calls; the metrics port (restart-only) changes too
    d.config_path.write_text(config(d.workdir, test_models_dir, NEW_GREETING, 2.0,
                                    metrics_port=1))
    reload(d)
    after = simulate(d, socket)
    # the daemon ended the call at the new calls.max_duration_s, politely
    assert agent_lines(after)[0] == NEW_GREETING
    assert agent_lines(after)[-1] == "Thanks for your time. Goodbye!", after["turns"]
    assert after["simulator"]["ended_by"] == "server", after["simulator"]
    assert after["simulator"]["duration_s"] < before["simulator"]["duration_s"]

    shown = json.loads(d.ctl("--socket", socket, "--json", "config", "show").stdout)
    assert shown["agent"]["greeting"] == NEW_GREETING
    assert shown["calls"]["max_duration_s"] == 2.0
    assert shown["metrics"]["port"] == 0  # restart-only: the running value stays
    assert "metrics changed; takes effect after a restart" in d.log()
