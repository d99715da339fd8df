"""The agent's results as webhooks, through a real daemon on the real small models: a campaign
running the real-estate example playbook, one simulated call whose lead (spoken by the real
voice, heard by the real STT) says they own the home and want to sell soon, and a receiver this
test runs. The call's end reaches it as `call.completed` with the agent's score, then
`lead.scored` (the score, each criterion's points, the reason), then `lead.qualified`, each
signed, in that order (the same lines qualify the lead in tests/dialogue/test_daemon_agent.py)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from reautod.integrations import signing
from reautod.integrations.events import (
    EVENTS,
    CallCompletedEvent,
    LeadQualifiedEvent,
    LeadScoredEvent,
)
from reautod.store.call_observer import call_uuid
from tests.conversation.conftest import daemon_config
from tests.dialogue.test_daemon_agent import OWNER_LINE, ctl_json
from tests.fixtures.daemon import DaemonProcess
from tests.integrations.standins import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SECRET = "whsec-lead-events"


def test_a_qualified_call_is_announced_scored_and_qualified(
    small_models_dir: Path, tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "crm_webhook_secret").write_text(SECRET + "\n")
    runtime = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # the socket path must stay short
    with WebhookReceiver() as crm:
        config = daemon_config(tmp_path, runtime, small_models_dir) + (
            f'[integrations]\nwebhook_url = "{crm.base_url}/hooks"\n'
            'webhook_secret_credential = "crm_webhook_secret"\n'
            "[integrations.delivery]\npoll_interval_s = 0.2\n")
        daemon = DaemonProcess(tmp_path, config, env={
            "HF_HUB_OFFLINE": "1", "CREDENTIALS_DIRECTORY": str(credentials)})
        for name in [n for n in daemon.env if n.startswith("REAUTOD_")]:
            del daemon.env[name]  # a developer's shell must not reconfigure it
        daemon.start()
        try:
            daemon.wait_ready(timeout=240)
            created = daemon.ctl("campaign", "create", "sellers",
                                 "--set", "playbook=real-estate-sellers")
            assert created.returncode == 0, created.stderr
            result = ctl_json(daemon, "call", "simulate", "--fast", "--campaign", "sellers",
                              "--say", "Yes, I have a minute.", "--say", OWNER_LINE, timeout=600)
            call_id = str(call_uuid(result["call_id"]))

            def about_the_call() -> list[Any]:
                return [r for r in crm.accepted() if r.json()["data"].get("call_id") == call_id]

            deadline = time.monotonic() + 90
            while len(about_the_call()) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            got = about_the_call()
            assert [r.json()["type"] for r in got] == [
                "call.completed", "lead.scored", "lead.qualified"], (
                    got, daemon.ctl("outbox", "list").stdout, daemon.log()[-3000:])
            for request in got:
                header = request.headers.get(signing.SIGNATURE_HEADER.lower())
                assert signing.verify(SECRET, request.body, header) is signing.Verdict.VALID
            completed, scored, qualified = (EVENTS.validate_json(r.body) for r in got)
            assert isinstance(completed, CallCompletedEvent)
            assert isinstance(scored, LeadScoredEvent) and isinstance(qualified, LeadQualifiedEvent)
            assert completed.data.outcome == "qualified"
            # owner + selling soon: over the playbook's threshold of 60
            assert scored.data.score >= 60 and completed.data.score == scored.data.score
            assert scored.data.factors["is_owner"] == 100.0
            assert scored.data.factors["timeline"] == 100.0
            assert scored.data.reason is not None and "qualified" in scored.data.reason
            assert qualified.data.score == scored.data.score
            assert {e.campaign.name for e in (completed, scored, qualified)
                    if e.campaign is not None} == {"sellers"}
        finally:
            daemon.stop()
            shutil.rmtree(runtime, ignore_errors=True)
