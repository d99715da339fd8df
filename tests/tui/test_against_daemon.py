"""The TUI against the real daemon, started as a subprocess: it connects, shows the daemon's
health, survives a daemon restart, and `D` drains the real daemon."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tui.conftest import wait_until
from tests.tui.fake_daemon import FIXED_NOW
from tui.app import ReautoApp
from tui.link import Backoff
from tui.screens.campaigns import CampaignsScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.tables import CampaignsTable

pytestmark = pytest.mark.slow


class DaemonProcess:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "reautod.toml"
        self.config.write_text(
            f'state_dir = "{root / "state"}"\nruntime_dir = "{root / "run"}"\n'
            '[http]\nport = 0\n[metrics]\nport = 0\n[models]\nprofile = "test"\n'
        )
        self.socket = root / "run" / "control.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reautod.daemon", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "daemon.log", "ab"),  # noqa: SIM115
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.proc = None


@pytest.fixture
def reautod() -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(Path(tempfile.mkdtemp(prefix="d-", dir="/tmp")))
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(daemon.root, ignore_errors=True)


async def test_tui_follows_the_real_daemon_through_a_restart(reautod: DaemonProcess) -> None:
    app = ReautoApp(reautod.socket, clock=lambda: FIXED_NOW, refresh_s=0.2,
                    backoff=Backoff(initial_s=0.1, max_s=0.5))
    async with app.run_test(size=(120, 36)) as pilot:
        # the socket is bound early in start-up; health fills in as the parts start
        await wait_until(
            pilot,
            lambda: app.state.connected and app.state.daemon_state == "ready"
            and {"database", "stt", "llm", "tts"} <= {c.name for c in app.state.health},
            "connected to a ready reautod with its health", timeout_s=120)
        assert not {c.name: c for c in app.state.health}["stt"].ok  # no models installed here

        await pilot.pause()
        reautod.stop()
        await wait_until(pilot, lambda: not app.state.connected, "disconnected", timeout_s=120)
        assert "DISCONNECTED" in app.sub_title

        sessions = app.link.sessions
        reautod.start()
        await wait_until(pilot, lambda: app.state.connected and app.link.sessions > sessions,
                         "reconnected to the restarted daemon", timeout_s=120)

        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        await pilot.press("y")
        assert reautod.proc is not None
        proc = reautod.proc
        await wait_until(pilot, lambda: proc.poll() is not None, "the daemon drained and exited",
                         timeout_s=120)
        assert proc.returncode == 0
        assert app.requests_sent == [("daemon.drain", {})]
        await wait_until(pilot, lambda: not app.state.connected, "disconnected after the drain")


async def test_campaigns_screen_reads_the_real_daemons_list(daemon_factory: Any) -> None:
    """The Campaigns screen against `campaigns.list` of a real daemon: every column filled."""
    d = daemon_factory()
    d.config_path.write_text(
        f'state_dir = "{d.workdir / "state"}"\n[http]\nport = 0\n[metrics]\nport = 0\n'
        '[models]\nprofile = "test"\n')
    d.start()
    d.wait_ready()
    for args in (("campaign", "create", "spring", "--max-concurrent", "3"),
                 ("campaign", "create", "fall"), ("campaign", "stop", "fall")):
        done = d.ctl(*args)
        assert done.returncode == 0, done.stderr
    leads = d.workdir / "leads.csv"
    leads.write_text("name,phone,timezone\nAnn,+12125550100,America/New_York\n"
                     "Bob,+12125550101,America/New_York\n")
    done = d.ctl("campaign", "import", "spring", str(leads))
    assert done.returncode == 0, done.stderr
    listed = d.ctl("campaign", "list")
    assert listed.returncode == 0, listed.stderr
    assert "spring" in listed.stdout and "new 2" in listed.stdout

    app = ReautoApp(d.socket_path, clock=lambda: FIXED_NOW, refresh_s=0.2,
                    backoff=Backoff(initial_s=0.1, max_s=0.5))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: len(app.state.campaigns) == 2, "campaigns loaded",
                         timeout_s=120)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CampaignsScreen), "campaigns")
        table = app.screen.query_one(CampaignsTable)
        row = [str(cell) for cell in table.get_row("spring")]
        assert row == ["spring", "draft", "0/2 (0%)", "0", "60/min, max 3", "$0.00"]
        row = [str(cell) for cell in table.get_row("fall")]
        assert row == ["fall", "completed", "-", "0", "60/min, max 2", "$0.00"]
