"""TLS on the daemon's own port, through a real daemon (subprocess) with a self-signed
certificate: the phone side (the Twilio simulator) streams a call over wss://, the admin API
answers over https://, `reautoctl call simulate` dials the daemon's own port over wss://, and
the same port refuses plain http and ws:// and a client that does not trust the certificate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from reautod.telephony.simulator import (
    CallOptions,
    Hangup,
    SimulatorError,
    WaitForAgent,
    run_call,
)
from tests.fixtures.tls import self_signed

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def test_https_and_wss_on_the_daemon_port(daemon_factory: Any, test_models_dir: Path,
                                          tmp_path: Path) -> None:
    made = self_signed(tmp_path / "tls")
    d = daemon_factory(env={"REAUTOD_SECRET_JWT_SECRET": "j" * 48})
    d.config_path.write_text(
        f'state_dir = "{d.workdir / "state"}"\nshutdown_grace_s = 5\n'
        f'[models]\ndir = "{test_models_dir}"\nprofile = "test"\ndevice = "cpu"\n'
        f'[http]\nport = 0\ntls_cert_file = "{made.cert_file}"\n'
        f'tls_key_file = "{made.key_file}"\n[metrics]\nport = 0\n'
    )
    d.start()
    d.wait_ready(timeout=240)
    port = json.loads(d.ctl("status", "--json").stdout)["http_port"]
    health = json.loads(d.ctl("health", "--json").stdout)
    assert health["checks"]["http"]["detail"] == f"listening on https://127.0.0.1:{port}"

    # 1. the admin API over https, for a client that trusts the certificate
    made_token = d.ctl("--json", "token", "create", "--subject", "ci", "--role", "auditor")
    assert made_token.returncode == 0, made_token.stderr
    bearer = {"Authorization": f"Bearer {json.loads(made_token.stdout)['token']}"}
    base = f"https://127.0.0.1:{port}"
    with httpx.Client(base_url=base, verify=made.client_context(), timeout=30) as api:
        assert api.get("/api/v1/audit").status_code == 401
        listed = api.get("/api/v1/audit", headers=bearer)
        assert listed.status_code == 200, listed.text
        assert "token.create" in {e["action"] for e in listed.json()["entries"]}

    # 2. the same port refuses plain http, and a client that checks certificates refuses ours
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{base}/healthz", timeout=10)

    # 3. the phone side: ws:// gets nothing, wss:// without trust is refused, with trust it talks
    with pytest.raises(SimulatorError):
        asyncio.run(run_call(CallOptions(url=f"ws://127.0.0.1:{port}/twilio/media"), [Hangup()]))
    wss = f"wss://127.0.0.1:{port}/twilio/media"
    with pytest.raises(SimulatorError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(run_call(CallOptions(url=wss), [Hangup()]))
    result = asyncio.run(run_call(
        CallOptions(url=wss, ssl=made.client_context(), record_audio=False, speed=4.0),
        [WaitForAgent(timeout_s=120), Hangup()],
    ))
    assert result.agent_bytes_received > 0 and result.malformed == 0, result.as_dict()

    # 4. reautoctl call simulate: the daemon dials its own port over wss://
    simulated = d.ctl("call", "simulate", "--fast", "--json", timeout=300)
    assert simulated.returncode == 0, (simulated.stdout, simulated.stderr, d.log()[-3000:])
    data = json.loads(simulated.stdout)
    assert data["simulator"]["ended_by"] != "refused" and data["turns"], data
    assert data["turns"][0]["speaker"] == "agent"
    d.stop()
    assert d.proc.returncode == 0, d.log()[-3000:]
    assert f"HTTP listening on https://127.0.0.1:{port}" in d.log()
