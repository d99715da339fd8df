"""reautod as a real subprocess under a fake service manager (a NOTIFY_SOCKET the test binds)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest


def config_for(workdir: Path, extra: str = "") -> str:
    return (
        f'state_dir = "{workdir / "state"}"\n'
        "shutdown_grace_s = 5\n"
        "[http]\nport = 0\n"
        "[metrics]\nport = 0\n"
        f"{extra}"
    )


def test_ready_only_after_control_socket_accepts(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory()
    d.config_path.write_text(config_for(d.workdir))
    d.start()
    ready_at = d.wait_ready()
    # at the moment READY=1 arrived, the socket already accepts connections and answers
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(d.socket_path))
        s.sendall(b'{"id": 1, "method": "status", "params": {}}\n')
        reply = json.loads(s.makefile().readline())
    assert reply["result"]["state"] == "ready"
    assert reply["result"]["http_port"] > 0
    lines = d.notify.lines()
    assert lines.index("READY=1") > 0
    assert any(line.startswith("STATUS=") for line in lines[: lines.index("READY=1")])
    assert ready_at > 0
    assert stat.S_IMODE(d.socket_path.stat().st_mode) == 0o660


def test_every_daemon_method_is_documented_with_its_result(daemon_factory) -> None:
    d = daemon_factory()
    d.config_path.write_text(config_for(d.workdir))
    d.start()
    d.wait_ready()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(d.socket_path))
        s.sendall(b'{"id": 1, "method": "methods"}\n')
        table = json.loads(s.makefile().readline())["result"]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "control-protocol.md").read_text()
    names = [m["name"] for m in table["methods"]]
    assert len(names) > 20
    undocumented = [n for n in names if f"`{n}`" not in doc]
    assert not undocumented, f"add to docs/control-protocol.md: {undocumented}"
    # every method answers with a typed result model, and the doc names it
    untyped = [m["name"] for m in table["methods"] if not m["result"]]
    assert not untyped, f"give these a result model: {untyped}"
    unnamed = sorted({m["result"] for m in table["methods"]
                      if f"`{m['result']}`" not in doc})
    assert not unnamed, f"name these results in docs/control-protocol.md: {unnamed}"


def test_watchdog_pings_arrive_from_the_loop(daemon_factory) -> None:
    d = daemon_factory(env={"WATCHDOG_USEC": "200000"})
    d.config_path.write_text(config_for(d.workdir))
    d.start()
    d.wait_ready()
    first = d.notify.wait_for("WATCHDOG=1", 10)
    # WatchdogSec=0.2 s -> a ping every 0.1 s; a busy box may stall the daemon's loop a while,
    # so the pings are counted until three came (or 10 s passed: then the loop stopped pinging).
    deadline = time.monotonic() + 10

    def pings() -> list[float]:
        return [t for t, line in d.notify.messages if line == "WATCHDOG=1" and t >= first]

    while len(pings()) < 3 and time.monotonic() < deadline:
        d.notify.poll(0.2)
    assert len(pings()) >= 3


def test_sigterm_drains_sends_stopping_and_exits_zero(daemon_factory) -> None:
    d = daemon_factory()
    d.config_path.write_text(config_for(d.workdir))
    d.start()
    d.wait_ready()
    sock = d.socket_path
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=5 + 10) == 0
    d.notify.poll(0.2)
    assert "STOPPING=1" in d.notify.lines()
    assert not sock.exists(), "socket file removed at stop"


def test_sighup_with_broken_config_keeps_the_old_one(daemon_factory) -> None:
    d = daemon_factory()
    d.config_path.write_text(config_for(d.workdir, "[agent]\nbusiness_name = 'Old Co'\n"))
    d.start()
    d.wait_ready()
    sock = str(d.socket_path)  # read while the config is still valid
    seen = len(d.notify.messages)
    d.config_path.write_text(config_for(d.workdir, "[agent]\nbusines_name = 'typo'\n"))
    d.signal(signal.SIGHUP)
    d.notify.wait_for("RELOADING=1", 10, after=seen)
    d.notify.wait_for("READY=1", 10, after=seen)
    show = d.ctl("--socket", sock, "--json", "config", "show")
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["agent"]["business_name"] == "Old Co"
    assert "reload rejected" in d.log() and "agent.busines_name" in d.log()
    # a valid change is applied
    seen = len(d.notify.messages)
    d.config_path.write_text(config_for(d.workdir, "[agent]\nbusiness_name = 'New Co'\n"))
    d.signal(signal.SIGHUP)
    d.notify.wait_for("READY=1", 10, after=seen)
    show = d.ctl("--socket", sock, "--json", "config", "show")
    assert json.loads(show.stdout)["agent"]["business_name"] == "New Co"


def test_second_daemon_on_the_same_socket_refuses(daemon_factory) -> None:
    first = daemon_factory(name="a")
    first.config_path.write_text(config_for(first.workdir))
    first.start()
    first.wait_ready()
    second = daemon_factory(name="b")
    # same socket (same runtime dir from the environment), different state dir
    second.config_path.write_text(config_for(second.workdir))
    second.start()
    assert second.wait(timeout=60) == 1
    assert "already running" in second.log()
    assert first.ctl("status").returncode == 0, "the first daemon is undisturbed"


def test_stale_socket_file_is_replaced(daemon_factory) -> None:
    d = daemon_factory()
    d.config_path.write_text(config_for(d.workdir))
    d.socket_path.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(d.socket_path))  # a socket file nobody listens on, as after a crash
    stale.close()
    d.start()
    d.wait_ready()
    assert d.ctl("status").returncode == 0


def test_embedded_default_without_any_config(tmp_path: Path) -> None:
    env = {**os.environ, "REAUTOD_HTTP__PORT": "0", "REAUTOD_METRICS__PORT": "0"}
    state = Path(env["XDG_STATE_HOME"]) / "reautod"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reautod.daemon"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            out = subprocess.run(
                [sys.executable, "-m", "reautod.control.cli", "--json", "status"],
                env=env,
                capture_output=True,
                text=True,
            )
            if out.returncode == 0:
                break
            time.sleep(0.3)
        status = json.loads(out.stdout)
        assert status["database_backend"] == "sqlite"
        assert status["session_backend"] == "memory"
        assert Path(status["state_dir"]) == state and state.is_dir()
        assert Path(status["socket"]).parent == Path(env["XDG_RUNTIME_DIR"]) / "reautod"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_check_config_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("shutdown_grace_s = -1\nbogus = 1\n[http]\nport = 'x'\n")
    out = subprocess.run(
        [sys.executable, "-m", "reautod.daemon", "--config", str(bad), "--check-config"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    for field in ("shutdown_grace_s", "bogus", "http.port"):
        assert field in out.stderr
    good = tmp_path / "good.toml"
    good.write_text("[http]\nport = 8099\n")
    ok = subprocess.run(
        [sys.executable, "-m", "reautod.daemon", "--config", str(good), "--check-config"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr


def test_missing_explicit_config_is_a_config_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "reautod.daemon",
            "--config",
            str(tmp_path / "nope.toml"),
            "--check-config",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "nope.toml" in out.stderr


@pytest.mark.parametrize("args", [["status"], ["health"], ["config", "show"]])
def test_reautoctl_without_daemon_says_so_and_exits_3(args: list[str], tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reautod.control.cli", "--socket", str(tmp_path / "x.sock"), *args],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 3
    assert out.stderr.count("\n") == 1 and "not running" in out.stderr
    assert "Traceback" not in out.stderr
