"""The admin API's gate: every route the app serves x every role, with a token and with an API
key (401 without one, 403 for a role without the route's permission, through otherwise; the one
open route, the refresh exchange, declared as such), tokens that are forged, expired, unknown or
revoked, API keys that are wrong, expired or revoked, refresh tokens rotated on use (a reuse
revokes the family), and the method running as the credential's principal through the audit hook. The credentials are the daemon's
own (`ApiCredentials` over a migrated SQLite database in the app's event loop)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from starlette.testclient import TestClient

from reautod.api.admin import (
    MAX_BODY_BYTES,
    OPEN_ROUTES,
    PREFIX,
    ROUTES,
    AuthenticationError,
    RateLimit,
    Route,
    TokenAuthority,
    admin_router,
)
from reautod.api.app import create_app
from reautod.api.credentials import ApiCredentials, token_methods
from reautod.control.results import HealthReport
from reautod.errors import ConfigError, NotFoundError, UnavailableError
from reautod.methods import Method
from reautod.security.principal import ROLE_PERMISSIONS, Principal, Role, acting_as, control_peer
from reautod.security.results import (
    CredentialInfo,
    CredentialList,
    RefreshParams,
    TokenResult,
)
from reautod.store.database import Database
from reautod.store.repositories.credentials import CredentialRepository
from tests.store.conftest import TEST_DB_SETTINGS

SECRET = "s" * 40
NOW = 1_800_000_000.0
R = TypeVar("R")


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


@dataclass
class Api:
    client: TestClient
    app: FastAPI
    credentials: ApiCredentials
    auditor: Auditor
    db_path: Path
    now: list[float]

    def serve(self, table: dict[str, Method], rate_limit: RateLimit | None = None,
              refresh_limit: RateLimit | None = None) -> None:
        """Serve these methods instead (another admin router on the same app)."""
        self.app.router.routes.clear()
        self.app.include_router(admin_router(self.credentials, table, self.auditor, rate_limit,
                                             refresh_limit))

    def refresh(self, refresh_token: str) -> Any:
        return self.client.post("/api/v1/token/refresh", json={"refresh_token": refresh_token})

    def run(self, work: Callable[..., Awaitable[R]], *args: Any) -> R:
        """`work(*args)` in the app's event loop (where the database lives)."""
        return self.client.portal.call(work, *args)  # type: ignore[union-attr]

    def credentials_at(self, at: float, secret: str = SECRET) -> ApiCredentials:
        """The same store under another clock or secret (tokens made then, or forged)."""
        return ApiCredentials(self.credentials.repository,
                              TokenAuthority(secret, clock=lambda: at),
                              clock=lambda: datetime.fromtimestamp(at, UTC))

    def token(self, subject: str, role: Role, *, at: float = NOW, secret: str = SECRET) -> str:
        made = self.run(self.credentials_at(at, secret).issue_token, subject, role,
                        timedelta(minutes=5), "uid:0")
        return made[0]

    def key(self, subject: str, role: Role, days: int | None = None) -> str:
        return self.run(self.credentials.create_key, subject, role, days, "uid:0")[0]

    def control(self, name: str, **params: Any) -> Any:
        """The control method `name` as an admin on the socket would call it."""
        method = {m.name: m for m in token_methods(self.credentials)}[name]

        async def call() -> Any:
            with acting_as(control_peer(0, 1, "test")):
                return await method.handler(method.params.model_validate(params))

        return self.run(call)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    now = [NOW]
    app = FastAPI()
    with TestClient(app) as client:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", TEST_DB_SETTINGS)

        async def open_db() -> None:
            await db.open()
            await db.upgrade("head")

        client.portal.call(open_db)  # type: ignore[union-attr]
        credentials = ApiCredentials(CredentialRepository(db),
                                     TokenAuthority(SECRET, clock=lambda: now[0]),
                                     clock=lambda: datetime.fromtimestamp(now[0], UTC))
        auditor = Auditor()
        app.include_router(admin_router(credentials, methods(), auditor))
        yield Api(client, app, credentials, auditor, tmp_path / "api.db", now)
        client.portal.call(db.close)  # type: ignore[union-attr]


def call(client: TestClient, route: Route, token: str | None = None,
         **kwargs: Any) -> Any:
    path = route.path.replace("{campaign}", "spring").replace("{call_id}", "c1").replace(
        "{number}", "+12125550100")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if route.verb == "GET":
        return client.get(f"/api/v1{path}", headers=headers, **kwargs)
    return client.post(f"/api/v1{path}", headers=headers, json={}, **kwargs)


def served(router: APIRouter) -> list[tuple[str, str]]:
    """(verb, path under /api/v1) of every route the admin router serves (all of them are
    there: its prefix is /api/v1)."""
    assert all(isinstance(r, APIRoute) and r.path.startswith(PREFIX + "/") for r in router.routes)
    return [(verb, r.path.removeprefix(PREFIX)) for r in router.routes
            if isinstance(r, APIRoute) for verb in r.methods or ()]


def test_every_route_and_role(api: Api) -> None:
    """Walks what the app serves, not only ROUTES: a route that is in neither ROUTES nor the
    explicit OPEN_ROUTES fails here, so a new route cannot ship open by accident."""
    client = api.client
    tokens = {role: api.token(f"who-{role}", role) for role in Role}
    keys = {role: api.key(f"bot-{role}", role) for role in Role}
    assert {r.method for r in ROUTES} <= set(methods())  # every route has a method to run
    gated: dict[tuple[str, str], Route] = {(r.verb, r.path): r for r in ROUTES}
    open_routes = {(r.verb, r.path): r for r in OPEN_ROUTES}
    # the one deliberately open route: its credential is the refresh token in its body
    assert set(open_routes) == {("POST", "/token/refresh")}
    serving = served(admin_router(api.credentials, methods(), api.auditor))
    assert sorted(serving) == sorted([*gated, *open_routes]), serving
    for _verb, path in open_routes:  # open, yet nothing without the refresh token
        for credential in (None, tokens[Role.ADMIN], keys[Role.ADMIN]):
            headers = {"Authorization": f"Bearer {credential}"} if credential else {}
            got = client.post(f"{PREFIX}{path}", headers=headers, json={})
            assert got.status_code == 422, got.text  # no refresh_token: no bearer stands in
    for (verb, path), role in itertools.product(serving, Role):
        if (verb, path) in open_routes:
            continue
        route = gated[verb, path]
        assert call(client, route).status_code == 401, route
        allowed = bool(route.allowed & ROLE_PERMISSIONS[role])
        for credential in (tokens[role], keys[role]):
            got = call(client, route, credential)
            assert got.status_code == (200 if allowed else 403), (route, role, got.text)
    # every role reaches something, and admin reaches everything
    for role in Role:
        assert any(route.allowed & ROLE_PERMISSIONS[role] for route in ROUTES), role


def test_bad_tokens_are_refused(api: Api) -> None:
    client, auditor = api.client, api.auditor
    audit = next(r for r in ROUTES if r.method == "audit.list")
    forged = api.token("x", Role.ADMIN, secret="f" * 40)  # stored, but not signed by our secret
    expired = api.token("x", Role.ADMIN, at=NOW - 3600)
    good = api.token("x", Role.ADMIN)
    # signed with our secret, never made by token.create (so not stored): refused too
    unknown = TokenAuthority(SECRET, clock=lambda: NOW).issue(
        "x", Role.ADMIN, timedelta(minutes=5), "ab" * 16).token
    for token in (forged, expired, unknown, good[:-3], "not.a.jwt", good.replace(".", "", 1)):
        got = call(client, audit, token)
        assert got.status_code == 401 and got.headers["www-authenticate"] == "Bearer", token
        assert got.json()["error"]["code"] == "unauthenticated"
    assert client.get("/api/v1/audit", headers={"Authorization": f"Basic {good}"}).status_code == 401
    assert auditor.runs == []
    assert call(client, audit, good).status_code == 200
    with pytest.raises(ConfigError):
        TokenAuthority("short")


def test_requests_run_as_the_token_subject_and_errors_map(api: Api) -> None:
    client, auditor = api.client, api.auditor
    token = api.token("ops-bot", Role.OPERATOR)
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
    """FastAPI's own pages (CDN scripts) are never served; ours are docs_router's."""
    async def health() -> HealthReport:
        return HealthReport(ok=True, checks={})

    client = TestClient(create_app([], health=health))
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/healthz").status_code == 200


def test_each_subject_has_its_own_rate(api: Api) -> None:
    now = [100.0]
    api.serve(methods(), RateLimit(rate_per_s=1, burst=2, clock=lambda: now[0]))
    client = api.client
    busy, other = (api.token(s, Role.ANALYST) for s in ("busy", "other"))

    def get(token: str) -> int:
        return client.get("/api/v1/calls", headers={"Authorization": f"Bearer {token}"}).status_code

    assert [get(busy), get(busy)] == [200, 200]
    refused = client.get("/api/v1/calls", headers={"Authorization": f"Bearer {busy}"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert get(other) == 200  # another subject is not slowed down
    assert client.get("/api/v1/calls").status_code == 401  # no token: refused before counting
    now[0] += 1.0
    assert get(busy) == 200


class Listed(BaseModel):
    names: list[str]


def test_typed_results_answer_in_their_json_form(api: Api) -> None:
    """A method returning a pydantic model (CampaignList and the like) answers as on the socket."""

    async def listed(_: BaseModel) -> Listed:
        return Listed(names=["spring"])

    table = {**methods(), "campaigns.list": Method("campaigns.list", listed, AnyParams)}
    api.serve(table)
    token = api.token("reader", Role.ANALYST)
    got = api.client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200 and got.json() == {"names": ["spring"]}
    assert got.headers["content-type"] == "application/json"
    # the OpenAPI document declares the model the handler's annotation names
    api.app.openapi_schema = None
    answers = api.app.openapi()["paths"]["/api/v1/campaigns"]["get"]["responses"]
    assert answers["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Listed"}

    async def untyped(_: BaseModel) -> Listed:
        return {"names": ["spring"]}  # type: ignore[return-value]  # the bug the API refuses

    api.serve({**methods(), "campaigns.list": Method("campaigns.list", untyped, AnyParams)})
    got = api.client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 500 and got.json()["error"]["code"] == "internal"


def test_tokens_and_keys_are_revoked_one_by_one(api: Api) -> None:
    calls = next(r for r in ROUTES if r.method == "calls.history")
    made = {name: TokenResult.model_validate(api.control(method, subject=name, role="analyst"))
            for name, method in (("person", "token.create"), ("other", "token.create"),
                                 ("machine", "token.create_key"))}
    assert made["machine"].token.startswith("rk_") and made["machine"].expires_at is None
    for name in made:
        assert call(api.client, calls, made[name].token).status_code == 200, name
    for name in ("person", "machine"):
        gone = CredentialInfo.model_validate(api.control("token.revoke", credential_id=made[name].id))
        assert gone.revoked_at is not None and gone.revoked_by == "uid:0"
        got = call(api.client, calls, made[name].token)
        assert got.status_code == 401 and "revoked" in got.json()["error"]["message"], name
    assert call(api.client, calls, made["other"].token).status_code == 200  # only those two
    live = CredentialList.model_validate(api.control("token.list")).credentials
    assert [c.subject for c in live] == ["other"]
    everything = CredentialList.model_validate(api.control("token.list", all=True)).credentials
    assert {c.subject: c.revoked_at is not None for c in everything} == {
        "person": True, "other": False, "machine": True}
    with pytest.raises(NotFoundError):
        api.control("token.revoke", credential_id="0" * 16)


def test_api_keys_are_stored_hashed_and_checked_whole(api: Api) -> None:
    calls = next(r for r in ROUTES if r.method == "calls.history")
    key = api.key("crm", Role.INTEGRATION, days=30)
    intake = next(r for r in ROUTES if r.method == "campaign.import")
    assert call(api.client, intake, key).status_code == 200
    assert api.auditor.runs[-1][1] == "key:crm"  # audited as the key's subject
    assert call(api.client, calls, key).status_code == 403  # its role, not more
    key_id, secret = key[3:19], key[20:]
    with sqlite3.connect(api.db_path) as conn:
        stored = conn.execute("SELECT * FROM api_credentials").fetchall()
    assert stored and not any(secret in str(row) for row in stored)
    assert any(hashlib.sha256(secret.encode()).hexdigest() in row for row in stored)
    for wrong in (f"rk_{key_id}_{secret[:-1]}A", f"rk_{'0' * 16}_{secret}", key[:-1], "rk_"):
        got = call(api.client, intake, wrong)
        assert got.status_code == 401 and got.json()["error"]["code"] == "unauthenticated"
    api.now[0] += 31 * 86400  # past its 30 days
    got = call(api.client, intake, key)
    assert got.status_code == 401 and "expired" in got.json()["error"]["message"]


def test_without_the_jwt_secret_nothing_is_made(tmp_path: Path) -> None:
    """The API is off: token.create and token.create_key say what to set, and store nothing
    (their database is never even opened)."""
    never_opened = Database(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}", TEST_DB_SETTINGS)
    off = ApiCredentials(CredentialRepository(never_opened), None)
    for name, params in (("token.create", {"subject": "x", "role": "admin"}),
                         ("token.create_key", {"subject": "x", "role": "integration"})):
        method = {m.name: m for m in token_methods(off)}[name]

        async def run(method: Method = method, params: dict[str, str] = params) -> Any:
            with acting_as(control_peer(0, 1, "test")):
                return await method.handler(method.params.model_validate(params))

        with pytest.raises(UnavailableError, match="jwt_secret"):
            asyncio.run(run())
    assert not (tmp_path / "none.db").exists()


def test_refresh_tokens_rotate_and_a_reuse_revokes_the_family(api: Api) -> None:
    calls = next(r for r in ROUTES if r.method == "calls.history")
    first = TokenResult.model_validate(api.control("token.create", subject="dash",
                                                   role="analyst", refresh_days=1))
    assert first.refresh_token is not None and first.refresh_token.startswith("rt_")
    assert first.refresh_expires_at is not None and first.refresh_id is not None
    assert call(api.client, calls, first.token).status_code == 200
    # a refresh token is no bearer credential
    as_bearer = call(api.client, calls, first.refresh_token)
    assert as_bearer.status_code == 401 and "refresh" in as_bearer.json()["error"]["message"]
    got = api.refresh(first.refresh_token)
    assert got.status_code == 200, got.text
    second = TokenResult.model_validate(got.json())
    assert second.subject == "dash" and second.role == Role.ANALYST
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.refresh_expires_at == first.refresh_expires_at  # the family's end holds
    assert call(api.client, calls, second.token).status_code == 200
    assert api.auditor.runs[-2][:3] == ("token.refresh", "token:dash", True)  # audited
    with sqlite3.connect(api.db_path) as conn:
        stored = str(conn.execute("SELECT * FROM api_credentials").fetchall())
    assert first.refresh_token[20:] not in stored and second.refresh_token[20:] not in stored
    listed = CredentialList.model_validate(api.control("token.list", all=True)).credentials
    spent = {c.id: c.spent_at is not None for c in listed if c.kind == "refresh"}
    assert spent == {first.refresh_id: True, second.refresh_id: False}
    assert {c.family for c in listed} == {first.refresh_id}

    # the spent one again (a stolen copy): refused, and its whole family with it
    reused = api.refresh(first.refresh_token)
    assert reused.status_code == 401 and "already used" in reused.json()["error"]["message"]
    assert api.auditor.runs[-1][:3] == ("token.refresh", "token:dash", True)
    assert api.refresh(second.refresh_token).status_code == 401
    for token in (first.token, second.token):
        got = call(api.client, calls, token)
        assert got.status_code == 401 and "revoked" in got.json()["error"]["message"]


def test_refresh_tokens_are_revoked_by_family_checked_and_rate_limited(api: Api) -> None:
    calls = next(r for r in ROUTES if r.method == "calls.history")
    other = api.token("other", Role.ANALYST)  # no family: untouched by the revocations below
    made = TokenResult.model_validate(api.control("token.create", subject="cli", role="admin",
                                                  refresh_days=1))
    assert made.refresh_token is not None and made.refresh_id is not None
    gone = CredentialInfo.model_validate(api.control("token.revoke",
                                                     credential_id=made.refresh_id))
    assert gone.revoked_at is not None and gone.kind == "refresh"
    got = api.refresh(made.refresh_token)
    assert got.status_code == 401 and "revoked" in got.json()["error"]["message"]
    assert call(api.client, calls, made.token).status_code == 401  # the family's token too
    assert call(api.client, calls, other).status_code == 200

    late = TokenResult.model_validate(api.control("token.create", subject="cli", role="admin",
                                                  refresh_days=1))
    assert late.refresh_token is not None
    wrong = f"{late.refresh_token[:-1]}{'A' if late.refresh_token[-1] != 'A' else 'B'}"
    for bad in (wrong, "rt_", "x" * 60):
        got = api.refresh(bad)
        assert got.status_code == 401 and got.json()["error"]["code"] == "unauthenticated", bad
    assert api.client.post("/api/v1/token/refresh", content=b"[1]").status_code == 400
    assert api.client.post("/api/v1/token/refresh",
                           json={"refresh_token": "x", "more": 1}).status_code == 422
    api.now[0] += 86400 + 1  # past its day
    got = api.refresh(late.refresh_token)
    assert got.status_code == 401 and "expired" in got.json()["error"]["message"]

    clock = [0.0]
    api.serve(methods(), refresh_limit=RateLimit(rate_per_s=1, burst=2, clock=lambda: clock[0]))
    assert [api.refresh("rt_guess").status_code for _ in range(3)] == [401, 401, 429]
    clock[0] += 1.0
    assert api.refresh("rt_guess").status_code == 401


def test_two_exchanges_of_one_refresh_token_at_once_count_as_a_reuse(api: Api) -> None:
    """Only one can spend it; the other is a reuse, so neither pair survives."""
    made = TokenResult.model_validate(api.control("token.create", subject="twice", role="analyst",
                                                  refresh_days=1))
    assert made.refresh_token is not None
    params = RefreshParams(refresh_token=made.refresh_token)

    async def both() -> tuple[TokenResult | BaseException, ...]:
        return await asyncio.gather(api.credentials.refresh(params),
                                    api.credentials.refresh(params), return_exceptions=True)

    won, lost = sorted(api.run(both), key=lambda r: isinstance(r, Exception))
    assert isinstance(won, TokenResult) and isinstance(lost, AuthenticationError)
    calls = next(r for r in ROUTES if r.method == "calls.history")
    assert call(api.client, calls, won.token).status_code == 401
    assert won.refresh_token is not None and api.refresh(won.refresh_token).status_code == 401
