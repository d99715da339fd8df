"""Swagger UI and ReDoc for the admin API, from files inside the package (`docs_assets/`).

FastAPI's own pages load their scripts and fonts from a CDN; these load only from this daemon:
the pages name `/docs/assets/...` files (a fixed list, so no other file can be asked for) and are
sent with a Content-Security-Policy that lets the browser fetch nothing from another origin (what
the bundles would reach for anyway, ReDoc's sidebar logo for one, is blocked). Swagger UI is
started by our own `swagger-init.js` (no inline script; its outside validator off).

Who may see them: no credential is needed, as for `/openapi.json` they describe: the pages hold
no data, and every request sent from them (Swagger UI's "Authorize", then "Try it out") needs a
bearer token or API key like any other client's. The daemon serves them only with the admin API
on, on the HTTP port, which answers beyond loopback only over TLS (docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = Path(__file__).with_name("docs_assets")
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SERVED = ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js", "redoc.standalone.js")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
       "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{head}
</head>
<body>
{body}
</body>
</html>
"""


def _page(title: str, head: str, body: str) -> str:
    return _PAGE.format(title=title, head=head, body=body)


SWAGGER_PAGE = _page(
    "reautod admin API",
    f'<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">',
    f'<div id="swagger-ui"></div>\n'
    f'<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>\n'
    f'<script src="{ASSETS_PATH}/swagger-init.js"></script>',
)
REDOC_PAGE = _page(
    "reautod admin API",
    "",
    '<redoc spec-url="/openapi.json"></redoc>\n'
    f'<script src="{ASSETS_PATH}/redoc.standalone.js"></script>',
)


def docs_router() -> APIRouter:
    """`/docs` (Swagger UI), `/redoc` (ReDoc) and their files; not in the OpenAPI document."""
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE, headers=_HEADERS)

    @router.get(REDOC_PATH)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(REDOC_PAGE, headers=_HEADERS)

    @router.get(ASSETS_PATH + "/{name}")
    async def asset(name: str) -> FileResponse:
        if name not in SERVED:
            raise HTTPException(404, "no such file")
        path = ASSETS / name
        return FileResponse(path, media_type=_TYPES[path.suffix],
                            headers={**_HEADERS, "Cache-Control": "public, max-age=86400"})

    return router
