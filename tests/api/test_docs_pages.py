"""Swagger UI and ReDoc come from files inside the package: each page and every file it names
load from the daemon's own app, the pages name nothing outside it, and the browser is told to
fetch nothing from another origin (Content-Security-Policy). The OpenAPI document declares the
bearer scheme, so Swagger UI can send a token, and each route's params (path, query, body)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.testclient import TestClient

from reautod.api.admin import OPEN_ROUTES, PREFIX, ROUTES, AuthenticationError, admin_router
from reautod.api.app import create_app
from reautod.api.docs import ASSETS, CSP, docs_router
from reautod.methods import Method
from reautod.security.principal import Principal, Role
from reautod.security.results import RefreshParams, TokenResult
from tests.api.test_admin import AnyParams, Auditor


class NoCredentials:
    """An Authenticator that knows no credential: the pages must load without one."""

    async def authenticate(self, credential: str, origin: str) -> Principal:
        raise AuthenticationError("no credentials here")

    async def refresh_holder(self, refresh_token: str, origin: str) -> Principal:
        raise AuthenticationError("no credentials here")

    async def refresh(self, params: RefreshParams) -> TokenResult:
        raise AuthenticationError("no credentials here")


REFERENCE = re.compile(r'(?:src|href|spec-url)="([^"]*)"')


def app() -> FastAPI:
    async def health() -> dict[str, Any]:
        return {"ok": True}

    async def handler(_: Any) -> dict[str, bool]:
        return {"ok": True}

    methods = {r.method: Method(r.method, handler, AnyParams) for r in ROUTES}
    return create_app([admin_router(NoCredentials(), methods, Auditor()), docs_router()],
                      health=health)


def test_the_pages_and_their_files_load_from_the_daemon_alone() -> None:
    client = TestClient(app())
    for page in ("/docs", "/redoc"):
        got = client.get(page)
        assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")
        assert "http://" not in got.text and "https://" not in got.text, page
        assert got.headers["content-security-policy"] == CSP
        named = REFERENCE.findall(got.text)
        assert named, page
        for url in named:
            assert url.startswith("/"), url  # this origin only
            if url == "/openapi.json":
                continue
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert asset.content == (ASSETS / url.rsplit("/", 1)[1]).read_bytes()
            assert asset.headers["content-type"].startswith(("text/javascript", "text/css"))
    init = (ASSETS / "swagger-init.js").read_text()
    assert "validatorUrl: null" in init and "http" not in init.replace("/openapi.json", "")
    # the policy: this origin only, no inline script, nothing framed
    for directive in ("default-src 'none'", "script-src 'self';", "connect-src 'self'",
                      "frame-ancestors 'none'"):
        assert directive in CSP
    assert "http" not in CSP and "*" not in CSP


def test_only_the_listed_files_are_served() -> None:
    client = TestClient(app())
    for name in ("README.md", "LICENSE.redoc", "..%2Fadmin.py", "../docs.py", "nothing.js"):
        assert client.get(f"/docs/assets/{name}").status_code == 404, name
    # the licences travel with the files they cover
    assert {"LICENSE.swagger-ui", "NOTICE.swagger-ui", "LICENSE.redoc"} <= {
        p.name for p in ASSETS.iterdir()}


def test_the_document_declares_the_bearer_scheme() -> None:
    client = TestClient(app())
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operations = {(verb.upper(), path.removeprefix(PREFIX)): op
                  for path, item in document["paths"].items() if path.startswith(PREFIX)
                  for verb, op in item.items()}
    open_routes = {(r.verb, r.path) for r in OPEN_ROUTES}
    assert operations and all(op["security"] == [{"bearer": []}]
                              for key, op in operations.items() if key not in open_routes)
    # the refresh exchange declares no bearer scheme (its credential is in the body), and its
    # samples send none
    for key in open_routes:
        assert "security" not in operations[key]
        assert all("Authorization" not in s["source"] for s in operations[key]["x-codeSamples"])
    assert "/docs" not in document["paths"] and "/redoc" not in document["paths"]
    assert client.get("/api/v1/campaigns").status_code == 401  # the pages opened nothing else


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str = Field(min_length=1, max_length=200)
    csv: str = Field(min_length=1)
    role: Role = Role.OPERATOR  # an enum: a `$defs` reference, inlined in the document


class HistoryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str | None = None
    limit: int = Field(50, ge=1, le=1000)


def test_the_document_describes_each_routes_params() -> None:
    async def handler(_: Any) -> dict[str, bool]:
        return {"ok": True}

    async def health() -> dict[str, Any]:
        return {"ok": True}

    models: dict[str, type[BaseModel]] = {"campaign.import": ImportParams,
                                          "calls.history": HistoryParams}
    methods = {r.method: Method(r.method, handler, models.get(r.method, AnyParams))
               for r in ROUTES}
    client = TestClient(create_app([admin_router(NoCredentials(), methods, Auditor())],
                                   health=health))
    paths = client.get("/openapi.json").json()["paths"]
    leads = paths["/api/v1/campaigns/{campaign}/leads"]["post"]
    [campaign] = leads["parameters"]
    assert campaign["in"] == "path" and campaign["schema"]["maxLength"] == 200
    body = leads["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"csv", "role"} and body["required"] == ["csv"]
    assert body["additionalProperties"] is False and leads["requestBody"]["required"]
    assert set(body["properties"]["role"]["enum"]) == {r.value for r in Role}
    asked = [op.get(part) for item in paths.values() for op in item.values()
             for part in ("parameters", "requestBody")]
    assert "$ref" not in str(asked) and "$defs" not in str(paths)
    history = {p["name"]: p for p in paths["/api/v1/calls"]["get"]["parameters"]}
    assert history["limit"]["in"] == "query" and history["limit"]["schema"]["maximum"] == 1000
    assert not history["limit"]["required"] and "requestBody" not in paths["/api/v1/calls"]["get"]
