"""The browser call page: `GET /call` (the page and its script, package files, nothing from
elsewhere), `GET /call/campaigns` (the campaigns the caller may choose, so that a campaign's
playbook answers) and `POST /call/offer` (an SDP offer in, the answer out, a call started).

Who may use it, checked on every request in this order:

1. the client's address must be in `webrtc.allowed_networks` (loopback only by default), else 403;
   behind a reverse proxy every address the request names (`X-Forwarded-For`, `Forwarded: for=`)
   must be too, so a proxy on loopback does not open the page to whoever it serves (a header can
   only narrow who is let in; a proxy that names no one needs the token below);
2. when the admin API is on (the jwt_secret credential), the offer (and the campaigns' list) needs an admin API bearer token
   (or API key) whose role may operate (`reautoctl token create --role operator`), checked like
   the API's own (revoked or expired: 401), else 401 or 403. The page
   asks for the token and keeps it in the tab's sessionStorage (or takes it from the URL's
   `#token=` fragment, which browsers never send to a server); the page itself holds nothing
   secret and is served without one;
3. the offer must be `application/json` and, when the browser says where it comes from
   (`Origin`), from this very page: another site cannot start calls from a visitor's browser
   (a cross-site JSON POST needs a CORS preflight, which is never granted).

Each call started here is in the audit log (`call.page`) with the token's subject, or
`page:<address>` when the admin API is off.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError

from reautod.api.admin import AuthenticationError, Authenticator, http_status
from reautod.control.server import MethodAuditor
from reautod.errors import (
    PermissionDeniedError,
    ReautodError,
    ValidationError,
)
from reautod.security.principal import Permission, Principal, Role
from reautod.webrtc.signalling import (
    MAX_SDP_CHARS,
    Answer,
    CampaignChoice,
    CampaignChoices,
    Offer,
    Transport,
)

log = logging.getLogger(__name__)

PAGE_PATH = "/call"
OFFER_PATH = "/call/offer"
CAMPAIGNS_PATH = "/call/campaigns"
MAX_BODY_BYTES = MAX_SDP_CHARS + 4096
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# the page runs only its own script and talks only to this daemon
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; media-src 'self' blob:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STATIC = {"call.html": "text/html; charset=utf-8", "call.js": "text/javascript; charset=utf-8",
           "call.css": "text/css; charset=utf-8"}


class Answers(Protocol):
    """What the page needs of the calls (webrtc.calls.WebRTCCalls)."""

    async def answer(self, offer: Offer, transport: Transport = "webrtc") -> Answer: ...

    async def campaigns(self) -> list[CampaignChoice]: ...


def _static(name: str) -> bytes:
    return resources.files("reautod.webrtc").joinpath("static", name).read_bytes()


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


def client_allowed(host: str | None, networks: Sequence[Network]) -> bool:
    """Whether a client address is in one of `networks` (an IPv4-mapped IPv6 counts as IPv4)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


def _forwarded_for(request: Request) -> list[str]:
    """The client addresses a proxy put in the request's headers (RFC 7239 and the older one)."""
    hosts = [h.strip() for value in request.headers.getlist("x-forwarded-for")
             for h in value.split(",")]
    for value in request.headers.getlist("forwarded"):
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, host = pair.strip().partition("=")
                if name.lower() == "for":
                    host = host.strip('"')
                    if host.startswith("["):  # "[2001:db8::1]:4711"
                        host = host[1:].partition("]")[0]
                    elif host.count(":") == 1:  # "192.0.2.1:4711"
                        host = host.partition(":")[0]
                    hosts.append(host)
    return hosts


def request_allowed(request: Request, networks: Sequence[Network]) -> bool:
    """The peer and every forwarded-for address are in `networks`."""
    peer = request.client.host if request.client else None
    return all(client_allowed(host, networks) for host in [peer, *_forwarded_for(request)])


def same_origin(origin: str | None, host: str | None) -> bool:
    """No Origin (not a browser's cross-site request) or one naming this very host:port."""
    if origin is None:
        return True
    return host is not None and urlsplit(origin).netloc == host


async def authorize(request: Request, credentials: Authenticator | None) -> Principal | None:
    """The offer's principal from its bearer credential (a token or an API key) when the admin
    API is on (None when off)."""
    if credentials is None:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("an admin API token is required (reautoctl token create "
                                  "--role operator)")
    client = request.client.host if request.client else "unknown"
    principal = await credentials.authenticate(token.strip(), f"call page from {client}")
    if not principal.may(Permission.OPERATE):
        raise PermissionDeniedError(f"{principal.subject} ({principal.role}) may not start calls")
    return principal


def call_page_router(calls: Answers, networks: Sequence[Network],
                     credentials: Authenticator | None, auditor: MethodAuditor) -> APIRouter:
    """The page, its files and the offer endpoint (see the module docstring for who may)."""
    router = APIRouter()
    files = {name: _static(name) for name in _STATIC}  # read once: a missing file fails start-up

    def allowed(request: Request) -> bool:
        return request_allowed(request, networks)

    @router.get(PAGE_PATH, include_in_schema=False)
    async def page(request: Request) -> Response:
        if not allowed(request):
            return _error(403, "forbidden", "the call page is not served to this address "
                          "(webrtc.allowed_networks)")
        return Response(files["call.html"], media_type=_STATIC["call.html"],
                        headers=_PAGE_HEADERS)

    # before the page's files: /call/{name} would take it
    @router.get(CAMPAIGNS_PATH, include_in_schema=False)
    async def campaigns(request: Request) -> Response:
        if not allowed(request):
            return _error(403, "forbidden", "not served to this address")
        try:
            await authorize(request, credentials)  # who may start a call may choose its campaign
            choices = await calls.campaigns()
        except ReautodError as err:
            return _error(http_status(err), err.code, err.message)
        return JSONResponse(CampaignChoices(campaigns=choices).model_dump(mode="json"),
                            headers={"Cache-Control": "no-store"})

    @router.get(PAGE_PATH + "/{name}", include_in_schema=False)
    async def asset(request: Request, name: str) -> Response:
        if not allowed(request):
            return _error(403, "forbidden", "not served to this address")
        if name not in files or name == "call.html":
            return _error(404, "not_found", "no such file")
        return Response(files[name], media_type=_STATIC[name], headers=_PAGE_HEADERS)

    @router.post(OFFER_PATH, include_in_schema=False)
    async def offer(request: Request) -> Response:
        if not allowed(request):
            return _error(403, "forbidden", "calls are not taken from this address "
                          "(webrtc.allowed_networks)")
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return _error(413, "too_large", f"the offer may be at most {MAX_BODY_BYTES} bytes")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "unsupported_media_type", "send the offer as application/json")
        if not same_origin(request.headers.get("origin"), request.headers.get("host")):
            return _error(403, "forbidden", "offers are taken from this daemon's own page only")
        try:
            principal = await authorize(request, credentials)
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                raise ValidationError(f"the offer may be at most {MAX_BODY_BYTES} bytes")
            try:
                parsed = Offer.model_validate(json.loads(body))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValidationError(f"the body is not JSON: {err}") from None
            except PydanticValidationError as err:
                raise ValidationError("; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in err.errors())) from None
            if principal is None:  # the admin API is off: an allowed address is who calls
                client = request.client.host if request.client else "unknown"
                principal = Principal(f"page:{client}", Role.OPERATOR, f"call page from {client}")
            answer = await auditor.run_method("call.page", parsed, _answer, principal,
                                              changes_state=True)
        except ReautodError as err:
            return _error(http_status(err), err.code, err.message)
        log.info("call %s started from the call page by %s", answer.call_id, principal.subject)
        return JSONResponse(answer.model_dump(), headers={"Cache-Control": "no-store"})

    async def _answer(offer: Any) -> Answer:  # the Offer validated above
        return await calls.answer(offer, "webrtc")

    return router
