"""The admin API's gate: every route x every role (401 without a token, 403 for a role without
the route's permission, through otherwise), tokens that are forged, expired or of no role, and
the method running as the token's principal through the audit hook."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from starlette.testclient import TestClient

from reautod.api.admin import (
    MAX_BODY_BYTES,
    ROUTES,
    RateLimit,
    Route,
    TokenAuthority,
    admin_router,
)
from reautod.api.app import create_app
from reautod.control.results import HealthReport
from reautod.errors import ConfigError, NotFoundError
from reautod.methods import Method
from reautod.security.principal import ROLE_PERMISSIONS, Principal, Role, acting_as

SECRET = "s" * 40
NOW = 1_800_000_000.0


class AnyParams(BaseModel):
    model_config = ConfigDict(extra="allow")


class Auditor:
    """MethodAuditor: runs the handler as the principal and records each run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, bool, dict[str, Any]]] = []

    async def run_method(self, name: str, params: BaseModel,
                         handler: Callable[[BaseModel], Awaitable[Any]], principal: Principal, *,
                         changes_state: bool) -> Any:
        self.runs.append((name, principal.subject, changes_state, params.model_dump()))
        with acting_as(principal):
            return await handler(params)


def methods() -> dict[str, Method]:
    async def handler(params: BaseModel) -> dict[str, Any]:
        if params.model_dump().get("campaign") == "missing":
            raise NotFoundError("no campaign missing")
        return {"ok": True}

    return {r.method: Method(r.method, handler, AnyParams, changes_state=r.verb == "POST")
            for r in ROUTES}


@pytest.fixture
def api() -> tuple[TestClient, TokenAuthority, Auditor]:
    authority = TokenAuthority(SECRET, clock=lambda: NOW)
    auditor = Auditor()
    app = FastAPI()
    app.include_router(admin_router(authority, methods(), auditor))
    return TestClient(app), authority, auditor


def call(client: TestClient, route: Route, token: str | None = None,
         **kwargs: Any) -> Any:
    path = route.path.replace("{campaign}", "spring").replace("{call_id}", "c1").replace(
        "{number}", "+12125550100")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if route.verb == "GET":
        return client.get(f"/api/v1{path}", headers=headers, **kwargs)
    return client.post(f"/api/v1{path}", headers=headers, json={}, **kwargs)


def test_every_route_and_role(api: tuple[TestClient, TokenAuthority, Auditor]) -> None:
    client, authority, _ = api
    tokens = {role: authority.issue(f"who-{role}", role, timedelta(minutes=5)).token
              for role in Role}
    assert {r.method for r in ROUTES} <= set(methods())  # every route has a method to run
    for route, role in itertools.product(ROUTES, Role):
        assert call(client, route).status_code == 401, route
        allowed = bool(route.allowed & ROLE_PERMISSIONS[role])
        got = call(client, route, tokens[role])
        assert got.status_code == (200 if allowed else 403), (route, role, got.text)
    # every role reaches something, and admin reaches everything
    for role in Role:
        assert any(route.allowed & ROLE_PERMISSIONS[role] for route in ROUTES), role


def test_bad_tokens_are_refused(api: tuple[TestClient, TokenAuthority, Auditor]) -> None:
    client, authority, auditor = api
    audit = next(r for r in ROUTES if r.method == "audit.list")
    forged = TokenAuthority("f" * 40, clock=lambda: NOW).issue("x", Role.ADMIN,
                                                              timedelta(minutes=5)).token
    expired = TokenAuthority(SECRET, clock=lambda: NOW - 3600).issue(
        "x", Role.ADMIN, timedelta(minutes=5)).token
    good = authority.issue("x", Role.ADMIN, timedelta(minutes=5)).token
    for token in (forged, expired, good[:-3], "not.a.jwt", good.replace(".", "", 1)):
        got = call(client, audit, token)
        assert got.status_code == 401 and got.headers["www-authenticate"] == "Bearer", token
        assert got.json()["error"]["code"] == "unauthenticated"
    assert client.get("/api/v1/audit", headers={"Authorization": f"Basic {good}"}).status_code == 401
    assert auditor.runs == []
    with pytest.raises(ConfigError):
        TokenAuthority("short")


def test_requests_run_as_the_token_subject_and_errors_map(
    api: tuple[TestClient, TokenAuthority, Auditor]
) -> None:
    client, authority, auditor = api
    token = authority.issue("ops-bot", Role.OPERATOR, timedelta(minutes=5)).token
    headers = {"Authorization": f"Bearer {token}"}
    got = client.post("/api/v1/campaigns/spring/pause", headers=headers, json={"campaign": "x"})
    assert got.status_code == 200
    # the path wins over the body; the principal and changes_state reach the audit hook
    assert auditor.runs[-1] == ("campaign.pause", "token:ops-bot", True, {"campaign": "spring"})
    got = client.get("/api/v1/calls?limit=5&campaign=spring", headers=headers)
    assert got.status_code == 200
    assert auditor.runs[-1] == ("calls.history", "token:ops-bot", False,
                                {"limit": "5", "campaign": "spring"})
    missing = client.get("/api/v1/campaigns/missing", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.post("/api/v1/campaigns", headers=headers, content=b"[1]").status_code == 400
    big = client.post("/api/v1/campaigns", headers={**headers, "Content-Length":
                                                    str(MAX_BODY_BYTES + 1)}, content=b"{}")
    assert big.status_code == 413


def test_no_cdn_documentation_pages() -> None:
    async def health() -> HealthReport:
        return HealthReport(ok=True, checks={})

    client = TestClient(create_app([], health=health))
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/healthz").status_code == 200


def test_each_subject_has_its_own_rate() -> None:
    now = [100.0]
    authority = TokenAuthority(SECRET, clock=lambda: NOW)
    app = FastAPI()
    app.include_router(admin_router(authority, methods(), Auditor(),
                                    RateLimit(rate_per_s=1, burst=2, clock=lambda: now[0])))
    client = TestClient(app)
    busy, other = (authority.issue(s, Role.ANALYST, timedelta(minutes=5)).token
                   for s in ("busy", "other"))

    def get(token: str) -> int:
        return client.get("/api/v1/calls", headers={"Authorization": f"Bearer {token}"}).status_code

    assert [get(busy), get(busy)] == [200, 200]
    refused = client.get("/api/v1/calls", headers={"Authorization": f"Bearer {busy}"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert get(other) == 200  # another subject is not slowed down
    assert client.get("/api/v1/calls").status_code == 401  # no token: refused before counting
    now[0] += 1.0
    assert get(busy) == 200


def test_typed_results_answer_in_their_json_form() -> None:
    """A method returning a pydantic model (CampaignList and the like) answers as on the socket."""

    class Listed(BaseModel):
        names: list[str]

    async def listed(_: BaseModel) -> Listed:
        return Listed(names=["spring"])

    authority = TokenAuthority(SECRET, clock=lambda: NOW)
    table = {**methods(), "campaigns.list": Method("campaigns.list", listed, AnyParams)}
    app = FastAPI()
    app.include_router(admin_router(authority, table, Auditor()))
    token = authority.issue("reader", Role.ANALYST, timedelta(minutes=5)).token
    got = TestClient(app).get("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200 and got.json() == {"names": ["spring"]}
    assert got.headers["content-type"] == "application/json"
