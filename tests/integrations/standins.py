"""Local stand-ins for what the integrations talk to, each a real HTTP server on 127.0.0.1:

- `WebhookReceiver`: a CRM's webhook endpoint; records every request, answers from a script of
  statuses (then 200), checks a bearer token or API key when told to.
- `TokenServer`: an OAuth 2.0 token endpoint: client credentials (client id/secret by Basic
  auth or form), and the JWT-bearer grant Google service accounts use (the assertion verified
  with the account's public key); tokens expire after `expires_in`.
- `SheetsStandIn` (in sheets_standin.py) speaks the Sheets v4 REST shapes.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


def json_reply(status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode()


class StandIn:
    """An HTTP server in a thread; subclasses answer in `handle`. Use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def handle(self, request: Received) -> Reply:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                url = urlsplit(self.path)
                request = Received(self.command, url.path, parse_qs(url.query),
                                   {k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(length))
                with standin.lock:
                    standin.requests.append(request)
                status, headers, body = standin.handle(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _serve

        return Handler

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]


class WebhookReceiver(StandIn):
    """Answers each POST with the next scripted status (then `default`); a 429/503 carries
    Retry-After when `retry_after` is set. `check` may refuse a request (returns a status)."""

    def __init__(self, script: list[int] | None = None, default: int = 200,
                 check: Callable[[Received], int | None] | None = None,
                 retry_after: str | None = None) -> None:
        super().__init__()
        self.script = list(script or [])
        self.default = default
        self.check = check
        self.retry_after = retry_after

    def handle(self, request: Received) -> Reply:
        if self.check is not None and (refused := self.check(request)) is not None:
            return refused, {}, b"refused"
        with self.lock:
            status = self.script.pop(0) if self.script else self.default
        headers = {"Retry-After": self.retry_after} if self.retry_after and status in (429, 503) else {}
        return status, headers, b"ok" if status < 300 else b"nope"

    def accepted(self) -> list[Received]:
        return [r for r in self.received() if r.method == "POST"]


class TokenServer(StandIn):
    """OAuth 2.0 token endpoint at /token; `issued` lists the tokens handed out."""

    JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def __init__(self, *, clients: dict[str, str] | None = None, expires_in: int = 3600,
                 public_keys: dict[str, str] | None = None) -> None:
        super().__init__()
        self.clients = dict(clients or {})
        self.public_keys = dict(public_keys or {})  # service account email -> PEM public key
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.assertions: list[dict[str, Any]] = []

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    def valid(self, token: str | None) -> bool:
        with self.lock:
            return token is not None and token in self.issued

    def bearer_ok(self, request: Received) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and self.valid(auth.removeprefix("Bearer "))

    def handle(self, request: Received) -> Reply:
        if request.path != "/token" or request.method != "POST":
            return json_reply(404, {"error": "not_found"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        grant = form.get("grant_type")
        if grant == "client_credentials":
            client_id, secret = form.get("client_id"), form.get("client_secret")
            auth = request.headers.get("authorization", "")
            if auth.startswith("Basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            if client_id not in self.clients or self.clients[client_id] != secret:
                return json_reply(401, {"error": "invalid_client"})
        elif grant == self.JWT_BEARER:
            try:
                unverified = jwt.decode(form["assertion"], options={"verify_signature": False})
                claims = jwt.decode(form["assertion"], self.public_keys[unverified["iss"]],
                                    algorithms=["RS256"], audience=self.token_url)
            except (KeyError, jwt.PyJWTError) as err:
                return json_reply(400, {"error": "invalid_grant", "error_description": str(err)})
            with self.lock:
                self.assertions.append(claims)
        else:
            return json_reply(400, {"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(16)
        with self.lock:
            self.issued.append(token)
        return json_reply(200, {"access_token": token, "token_type": "Bearer",
                                "expires_in": self.expires_in})
