"""Swagger UI and ReDoc come from files inside the package: each page and every file it names
load from the daemon's own app, the pages name nothing outside it, and the browser is told to
fetch nothing from another origin (Content-Security-Policy). The OpenAPI document declares the
bearer scheme, so Swagger UI can send a token."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.testclient import TestClient

from reautod.api.admin import ROUTES, AuthenticationError, admin_router
from reautod.api.app import create_app
from reautod.api.docs import ASSETS, CSP, docs_router
from reautod.methods import Method
from reautod.security.principal import Principal
from tests.api.test_admin import AnyParams, Auditor


class NoCredentials:
    """An Authenticator that knows no credential: the pages must load without one."""

    async def authenticate(self, credential: str, origin: str) -> Principal:
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
    operations = [op for path, item in document["paths"].items() if path.startswith("/api/v1")
                  for op in item.values()]
    assert operations and all(op["security"] == [{"bearer": []}] for op in operations)
    assert "/docs" not in document["paths"] and "/redoc" not in document["paths"]
    assert client.get("/api/v1/campaigns").status_code == 401  # the pages opened nothing else
