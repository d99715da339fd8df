"""The admin API on a real daemon (subprocess): `reautoctl token create` makes tokens and API
keys, the API refuses without one and for the wrong role, serves the right one, what a token
holder changes is in the audit log under the token's subject, a refresh token from `token create
--refresh-days` buys one new token (a second use is refused; migration 0009 on a real database),
and `token revoke` ends one credential at once (`token list` shows it)."""

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
        made = d.ctl("--json", "token", "create", "--subject", "ci-dash", "--role", "analyst",
                     "--refresh-days", "1")
        assert made.returncode == 0, made.stderr
        refresh = {"refresh_token": json.loads(made.stdout)["refresh_token"]}
        renewed = api.post("/token/refresh", json=refresh)
        assert renewed.status_code == 200, renewed.text
        as_dash = {"Authorization": f"Bearer {renewed.json()['token']}"}
        assert api.get("/campaigns", headers=as_dash).status_code == 200
        assert api.post("/token/refresh", json=refresh).status_code == 401  # spent: a reuse
        assert api.get("/campaigns", headers=as_dash).status_code == 401  # family revoked
        listed = api.get("/audit", headers=as_auditor, params={"limit": 20})
        assert listed.status_code == 200, listed.text
        entries = listed.json()["entries"]
    by_action = {(e["action"], e["actor"]) for e in entries}
    assert ("campaign.create", "token:ci-admin") in by_action
    assert ("token.refresh", "token:ci-dash") in by_action
    assert ("token.create", f"uid:{os.getuid()}") in by_action
    assert "spring" in d.ctl("campaign", "list").stdout

    # an API key for a machine client, then both it and the admin token revoked by id
    made = d.ctl("--json", "token", "create", "--subject", "crm", "--role", "integration",
                 "--api-key")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    listed_ids = {c["id"] for c in json.loads(d.ctl("--json", "token", "list").stdout)[
        "credentials"]}
    assert key["id"] in listed_ids and key["token"] not in d.ctl("token", "list").stdout
    admin_id = next(c["id"] for c in json.loads(d.ctl("--json", "token", "list").stdout)[
        "credentials"] if c["subject"] == "ci-admin")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as api:
        as_key = {"Authorization": f"Bearer {key['token']}"}
        assert api.get("/dnc/+12125550100", headers=as_key).status_code == 200
        for credential in (key["id"], admin_id):
            assert d.ctl("token", "revoke", credential).returncode == 0
        assert api.get("/dnc/+12125550100", headers=as_key).status_code == 401
        assert api.get("/campaigns", headers=as_admin).status_code == 401
        assert api.get("/audit", headers=as_auditor).status_code == 200  # only those two
        audit = api.get("/audit", headers=as_auditor, params={"limit": 5}).json()["entries"]
    revoked = {e["target_id"] for e in audit if e["action"] == "token.revoke"}
    assert revoked == {key["id"], admin_id}  # the audit names what was revoked
