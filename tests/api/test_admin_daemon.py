"""The admin API on a real daemon (subprocess): `reautoctl token create` makes tokens, the API
refuses without one and for the wrong role, serves the right one, and what a token holder changes
is in the audit log under the token's subject."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx


def api_daemon(daemon_factory: Any, **secrets: str) -> Any:
    """A started daemon with the admin API on (a jwt_secret), no models, free ports."""
    d = daemon_factory(env={"REAUTOD_SECRET_JWT_SECRET": "j" * 48, **secrets})
    d.config_path.write_text(
        f'state_dir = "{d.workdir / "state"}"\nshutdown_grace_s = 5\n'
        "[http]\nport = 0\n[metrics]\nport = 0\n"
    )
    d.start()
    d.wait_ready(timeout=120)
    return d


def test_tokens_roles_and_audit_through_the_daemon(daemon_factory: Any) -> None:
    d = api_daemon(daemon_factory)

    def token(subject: str, role: str) -> str:
        made = d.ctl("--json", "token", "create", "--subject", subject, "--role", role)
        assert made.returncode == 0, made.stderr
        return str(json.loads(made.stdout)["token"])

    auditor, admin = token("ci-audit", "auditor"), token("ci-admin", "admin")
    port = json.loads(d.ctl("status", "--json").stdout)["http_port"]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as api:
        assert api.get("/audit").status_code == 401
        as_auditor = {"Authorization": f"Bearer {auditor}"}
        as_admin = {"Authorization": f"Bearer {admin}"}
        assert api.get("/campaigns", headers=as_auditor).status_code == 403
        made = api.post("/campaigns", headers=as_admin, json={"name": "spring"})
        assert made.status_code == 200, made.text
        bad = api.post("/campaigns", headers=as_admin, json={"name": "x\x1b[2J"})
        assert bad.status_code == 422 and "control" in bad.text
        listed = api.get("/audit", headers=as_auditor, params={"limit": 20})
        assert listed.status_code == 200, listed.text
        entries = listed.json()["entries"]
    by_action = {(e["action"], e["actor"]) for e in entries}
    assert ("campaign.create", "token:ci-admin") in by_action
    assert ("token.create", f"uid:{os.getuid()}") in by_action
    assert "spring" in d.ctl("campaign", "list").stdout
