"""Results out through a real daemon (subprocess): a simulated call ends and its `call.completed`
webhook reaches a receiver this test runs, signed with the configured credential;
`reautoctl outbox` shows it delivered; the incoming lead and DNC endpoints answer on the
daemon's HTTP port, only to requests with the API key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reautod.integrations import signing
from reautod.integrations.control import OutboxListResult, OutboxStatusResult
from reautod.integrations.events import EVENTS, CallCompletedEvent
from reautod.store.call_observer import call_uuid
from tests.integrations.standins import Received, WebhookReceiver

SECRET = "whsec-daemon-e2e"
API_KEY = "incoming-key-e2e"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def wait_for(receiver: WebhookReceiver, event_type: str, timeout: float = 60.0) -> Received:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in receiver.accepted():
            if request.headers.get("reautod-event-type") == event_type:
                return request
        time.sleep(0.1)
    raise AssertionError(f"no {event_type} webhook within {timeout} s: {receiver.received()}")


def config(state: Path, models: dict[str, Any], hook_url: str) -> str:
    return (
        f'state_dir = "{state}"\nshutdown_grace_s = 5\n'
        "[http]\nport = 0\n[metrics]\nport = 0\n"
        f'[models]\ndir = "{models["dir"]}"\nprofile = "test"\ndevice = "cpu"\n'
        f'[integrations]\nwebhook_url = "{hook_url}"\n'
        'webhook_secret_credential = "crm_webhook_secret"\n'
        "[integrations.delivery]\npoll_interval_s = 0.2\n"
        '[integrations.incoming]\nenabled = true\napi_key_credential = "incoming_api_key"\n'
    )


@pytest.mark.slow
def test_a_call_end_is_delivered_signed_and_leads_come_in(
    daemon_factory: Any, test_model_overrides: dict[str, Any], receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "crm_webhook_secret").write_text(SECRET + "\n")
    (credentials / "incoming_api_key").write_text(API_KEY + "\n")
    d = daemon_factory(env={"CREDENTIALS_DIRECTORY": str(credentials)})
    d.config_path.write_text(config(d.workdir / "state", test_model_overrides["models"],
                                    f"{receiver.base_url}/hooks/reautod"))
    d.start()
    d.wait_ready(timeout=240)

    def ctl(*args: str) -> Any:
        result = d.ctl("--json", *args, timeout=300)
        assert result.returncode == 0, (args, result.stdout, result.stderr, d.log()[-3000:])
        return json.loads(result.stdout)

    health = ctl("health")["checks"]["integrations"]
    assert health["ok"] is True and "webhook" in health["detail"], health

    # a call ends: its webhook arrives, signed over the exact body, about that call
    call = ctl("call", "simulate", "--fast")
    got = wait_for(receiver, "call.completed")
    assert got.path == "/hooks/reautod"
    assert signing.verify(SECRET, got.body, got.headers.get(signing.SIGNATURE_HEADER.lower())) \
        is signing.Verdict.VALID
    assert signing.verify("another-secret", got.body, got.headers.get(signing.SIGNATURE_HEADER.lower())) \
        is signing.Verdict.MISMATCH
    event = EVENTS.validate_json(got.body)
    assert isinstance(event, CallCompletedEvent)
    assert event.data.call_id == str(call_uuid(call["call_id"]))
    assert event.data.status == "completed" and event.data.ended_at is not None
    assert got.headers["idempotency-key"] == str(event.id)

    # the operator sees it delivered
    deadline = time.monotonic() + 30
    while True:
        listed = OutboxListResult.model_validate(ctl("outbox", "list"))
        mine = [m for m in listed.messages if m.event_id == event.id]
        if (mine and mine[0].status == "delivered") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(m.event_type, m.endpoint, m.status) for m in mine] == [
        ("call.completed", "global", "delivered")]
    status = OutboxStatusResult.model_validate(ctl("outbox", "status"))
    assert status.endpoints == ["global"] and status.dead_letters == 0
    assert status.by_status.get("delivered", 0) >= 1

    # incoming leads and DNC entries, on the daemon's HTTP port, with the API key only
    ctl("campaign", "create", "spring")
    base = f"http://127.0.0.1:{ctl('status')['http_port']}/integrations/v1"
    leads = {"leads": [{"phone": "+12125550147", "name": "Pat Doe"}, {"phone": "not a number"}]}
    # the first import loads the phone-number metadata: seconds on a busy box
    http = httpx.Client(timeout=120)
    refused = http.post(f"{base}/campaigns/spring/leads", json=leads)
    assert refused.status_code == 401
    wrong = http.post(f"{base}/campaigns/spring/leads", json=leads,
                       headers={"X-API-Key": "guess"})
    assert wrong.status_code == 401
    added = http.post(f"{base}/campaigns/spring/leads", json=leads,
                       headers={"X-API-Key": API_KEY})
    assert added.status_code == 200, added.text
    report = added.json()
    assert report["campaign"] == "spring" and report["summary"]["new_leads"] == 1
    assert {i["line"] for i in report["issues"]} == {3}  # the second item, as CSV line 3
    dnc = http.post(f"{base}/dnc", json={"number": "+12125550148"},
                     headers={"X-API-Key": API_KEY})
    assert dnc.status_code == 200 and dnc.json()["scope"] == "global", dnc.text
    http.close()
    checked = ctl("dnc", "check", "+12125550148")
    assert checked["suppressed"] is True, checked

    d.stop()
    assert d.proc.returncode == 0, d.log()[-3000:]
