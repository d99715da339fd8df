"""End to end through a real daemon (subprocess) and reautoctl: a simulated call is metered into
the ledger (visible in `call show` and in the budget it counts against), and a spent budget
stops `reautoctl dial` and the campaign dialer with the `budget` reason.

Twilio is configured (so dialing is on) but its API points at a closed port: a call that got
past the budget would fail as `place_failed`, never as `budget`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.daemon import wait_until
from tests.speech import SPEECH_DIR

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

TOKEN = "cost-e2e-token"


def test_a_call_is_metered_and_a_spent_budget_stops_dialing(
        daemon_factory: Any, test_models_dir: Path, tmp_path: Path) -> None:
    lead_audio = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
    if not lead_audio.exists():
        pytest.skip(f"speech fixture {lead_audio} not present")
    d = daemon_factory(env={"REAUTOD_SECRET_TWILIO_AUTH_TOKEN": TOKEN})
    d.config_path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "shutdown_grace_s = 5\n"
        '[http]\nport = 0\npublic_base_url = "https://voice.example.com"\n'
        "[metrics]\nport = 0\n"
        f'[models]\ndir = "{test_models_dir}"\nprofile = "test"\ndevice = "cpu"\n'
        '[twilio]\naccount_sid = "AC' + "3" * 32 + '"\nfrom_number = "+15005550006"\n'
        'api_base_url = "http://127.0.0.1:9"\n'
        '[cost]\ntimezone = "America/Chicago"\n'
    )
    d.start()
    d.wait_ready(timeout=240)

    def ctl(*args: str) -> Any:
        result = d.ctl("--json", *args, timeout=180)
        assert result.returncode == 0, (args, result.stdout, result.stderr, d.log()[-3000:])
        return json.loads(result.stdout)

    budget = ctl("budget", "set", "day", "50")["budget"]
    assert budget["timezone"] == "America/Chicago" and budget["spent_micros"] == 0

    events = subprocess.Popen(  # the first cost.update, as a subscriber (the TUI) gets it
        [sys.executable, "-m", "reautod.control.cli", "--config", str(d.config_path), "events",
         "cost", "--json", "--count", "1"], env=d.env, stdout=subprocess.PIPE, text=True)
    time.sleep(3)  # subscribed by then; the call's last update comes seconds later anyway
    call_id = ctl("call", "simulate", "--fast", "--lead-audio", str(lead_audio))["call_id"]
    out, _ = events.communicate(timeout=60)
    update = json.loads(out)
    assert update["event"] == "cost.update" and update["data"]["call_id"] == call_id
    # (a turn's tiny model compute may still round to $0; the call's total is checked below)
    assert update["data"]["cost_micros"] >= 0 and update["data"]["price_book"]

    # The call's ledger rows, written through the write-behind queue once the call ended.
    def costed() -> dict[str, Any] | None:
        cost = ctl("call", "show", call_id)["cost"]
        return cost if {"stt", "llm", "tts"} <= set(cost["by_service"]) else None

    cost = wait_until("the call's cost rows", costed)
    assert cost["total_micros"] > 0 and cost["total_micros"] == sum(cost["by_service"].values())
    assert "telephony" not in cost["by_service"]  # a simulated call uses no phone line
    assert all(v > 0 for v in cost["by_service"].values()), cost
    shown = d.ctl("call", "show", call_id)
    assert shown.returncode == 0 and "cost" in shown.stdout and "stt $" in shown.stdout

    # The same rows counted against the site-wide day budget.
    status = ctl("budget", "status")
    assert status["stop"]["stopped"] is False
    (day,) = status["budgets"]
    assert day["spent_micros"] == cost["total_micros"] and not day["at_cap"]

    # A budget at zero: reautoctl dial is refused with the budget reason, before Twilio.
    ctl("budget", "set", "day", "0")
    refused = d.ctl("dial", "+12125550100")
    assert refused.returncode != 0
    assert "over budget (budget_cap_day)" in refused.stderr, refused.stderr

    # The campaign dialer claims nothing to dial and records the budget block.
    leads = tmp_path / "leads.csv"
    leads.write_text("name,phone,timezone\nAnn,+12125550100,America/New_York\n")
    ctl("campaign", "create", "spring", "--hours", "00:00-23:59", "--days", "mon-sun")
    assert ctl("campaign", "import", "spring", str(leads))["summary"]["imported"] == 1
    assert ctl("campaign", "start", "spring")["status"] == "active"
    blocks = wait_until("the budget block", lambda: ctl("campaign", "status", "spring")
                        ["recent_blocks"])
    assert [(b["reason"], b["rule"]) for b in blocks] == [("budget", "budget_cap_day")]
    assert blocks[0]["retry_at"] is not None  # when the day ends in America/Chicago
    assert len(ctl("call", "history")["calls"]) == 1  # the simulated call, nothing dialed

    # Both refusals counted for Prometheus.
    port = ctl("status")["metrics_port"]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    (blocked,) = [line for line in metrics.splitlines()
                  if line.startswith('reautod_dial_attempts_blocked_total{reason="budget"}')]
    assert float(blocked.split()[-1]) >= 2, blocked

    # The emergency stop refuses too, with its own rule, whatever the caps say.
    ctl("budget", "remove", "day")
    ctl("budget", "stop", "--reason", "test")
    refused = d.ctl("dial", "+12125550100")
    assert refused.returncode != 0 and "spending_stopped" in refused.stderr, refused.stderr
