"""The admin HTTP API, `/api/v1`: the control socket's methods for remote clients, behind bearer
tokens with roles.

Every route names the control method it runs and the permissions that may call it (`ROUTES`);
nothing else is served under /api/v1 but the routes `OPEN_ROUTES` names with the reason they
take no bearer credential (the refresh exchange, whose credential is the refresh token in its
body), so a route cannot ship without a role check. A request
is answered in this order: 413 when the body is over MAX_BODY_BYTES, 401 without a valid token,
429 when the token's subject is over its rate (`RateLimit`), 403 when the token's role holds
none of the route's permissions, 422 when the params do not fit
the method's model; then the method runs as the token's principal (`token:<subject>`) through the
same audit hook as the control socket, so state-changing calls are in the audit log.

Who holds a valid credential is the `Authenticator`'s to say (`reautod.api.credentials`): JWTs
(HS256, signed here with the `jwt_secret` credential: subject, role, jti, issued-at, expiry at
most MAX_TTL) made by `reautoctl token create` and revocable one by one by their jti, and API
keys for machine clients (stored hashed, revocable), and refresh tokens (stored hashed, rotated
on use, a reuse revokes their family) exchanged at `POST /api/v1/token/refresh`, rate limited per
client address (`refresh_rate_limit`). Rotating the secret still kills every token at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from reautod.api.operations import operation_extra
from reautod.campaigns.pacing import TokenBucket
from reautod.control.protocol import encode_result
from reautod.control.server import MethodAuditor
from reautod.errors import (
    ConfigError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ReautodError,
    UnavailableError,
    ValidationError,
)
from reautod.methods import Method
from reautod.security.principal import Permission, Principal, Role
from reautod.security.results import (
    MAX_TOKEN_MINUTES,
    RefreshParams,
    TokenResult,
)

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
ISSUER = "reautod"
MAX_TTL = timedelta(minutes=MAX_TOKEN_MINUTES)
MAX_BODY_BYTES = 8 * 1024 * 1024  # a lead CSV fits; more is refused before it is read
MAX_REFRESH_BODY_BYTES = 4096
MIN_SECRET_CHARS = 32
# Declares the bearer scheme in the OpenAPI document (Swagger UI's "Authorize"); it checks
# nothing itself (auto_error off): `_authenticate` does.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="a token or API key from `reautoctl token create`")


class AuthenticationError(ReautodError):
    """No token, or one that is malformed, forged, expired or names no known role."""

    code = "unauthenticated"


P = Permission


@dataclass(frozen=True)
class Route:
    verb: Literal["GET", "POST"]
    path: str
    method: str  # the control method it runs
    allowed: frozenset[Permission]


def _route(verb: Literal["GET", "POST"], path: str, method: str, *allowed: Permission) -> Route:
    return Route(verb, path, method, frozenset(allowed))


ROUTES: tuple[Route, ...] = (
    _route("GET", "/health", "health", P.READ, P.AUDIT, P.INTAKE),
    _route("GET", "/campaigns", "campaigns.list", P.READ),
    _route("POST", "/campaigns", "campaign.create", P.OPERATE),
    _route("GET", "/campaigns/{campaign}", "campaign.status", P.READ),
    _route("POST", "/campaigns/{campaign}/leads", "campaign.import", P.OPERATE, P.INTAKE),
    *(_route("POST", f"/campaigns/{{campaign}}/{action}", f"campaign.{action}", P.OPERATE)
      for action in ("start", "pause", "resume", "stop")),
    _route("GET", "/calls", "calls.history", P.READ),
    _route("GET", "/calls/{call_id}", "call.show", P.READ),
    _route("GET", "/calls/{call_id}/audio", "call.audio", P.RECORDINGS),
    _route("POST", "/dnc", "dnc.add", P.OPERATE, P.INTAKE),
    _route("GET", "/dnc/{number}", "dnc.check", P.READ, P.INTAKE),
    _route("GET", "/audit", "audit.list", P.AUDIT),
    _route("GET", "/audit/verify", "audit.verify", P.AUDIT),
    _route("POST", "/privacy/export", "privacy.export", P.PRIVACY),
    _route("POST", "/privacy/erase", "privacy.erase", P.PRIVACY),
    _route("GET", "/privacy/requests", "privacy.requests", P.PRIVACY),
    _route("GET", "/keys", "keys.status", P.KEYS),
)


@dataclass(frozen=True)
class OpenRoute:
    """A route served without a bearer credential, and why that is safe."""

    verb: Literal["GET", "POST"]
    path: str
    method: str
    why: str


REFRESH = OpenRoute("POST", "/token/refresh", "token.refresh",
                    "its credential is the refresh token in the body (spent by the call)")
OPEN_ROUTES: tuple[OpenRoute, ...] = (REFRESH,)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    subject: str
    role: Role
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    """What a token's valid signature vouches for; `jti` None on a token made before there
    were jtis (refused by the credentials, which know every token they made)."""

    subject: str
    role: Role
    jti: str | None


class Authenticator(Protocol):
    """Who a bearer credential is; AuthenticationError when it is no valid credential."""

    async def authenticate(self, credential: str, origin: str) -> Principal: ...


class Credentials(Authenticator, Protocol):
    """The admin router's: bearer credentials, and the refresh exchange: who holds a refresh
    token (its secret checked), then the exchange itself (run as that holder, audited)."""

    async def refresh_holder(self, refresh_token: str, origin: str) -> Principal: ...

    async def refresh(self, params: RefreshParams) -> TokenResult: ...


class TokenAuthority:
    """Issues and checks the API's bearer tokens (HS256 under the jwt_secret credential)."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError("the jwt_secret credential is too short for signing API tokens",
                              [("secrets.jwt_secret", f"at least {MIN_SECRET_CHARS} characters "
                                "(openssl rand -hex 32)")])
        self._key = OctKey.import_key(secret.encode())
        self._clock = clock

    def issue(self, subject: str, role: Role, ttl: timedelta, jti: str) -> IssuedToken:
        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValidationError(f"a token lives more than 0 s and at most {MAX_TTL}")
        now = int(self._clock())
        expires = now + int(ttl.total_seconds())
        claims = {"iss": ISSUER, "sub": subject, "role": role.value, "jti": jti, "iat": now,
                  "exp": expires}
        token = jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, self._key)
        return IssuedToken(token, subject, role, jti, datetime.fromtimestamp(expires, UTC))

    def verify(self, token: str) -> TokenClaims:
        """The claims of a token signed here, unexpired, of a known role."""
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"]).claims
            jwt.JWTClaimsRegistry(
                now=int(self._clock()), iss={"essential": True, "value": ISSUER},
                sub={"essential": True}, exp={"essential": True},
            ).validate(claims)
            role = Role(str(claims.get("role")))
        except (JoseError, ValueError) as err:
            raise AuthenticationError(f"invalid token: {type(err).__name__}") from err
        jti = claims.get("jti")
        return TokenClaims(str(claims["sub"]), role, jti if isinstance(jti, str) else None)


@dataclass
class RateLimit:
    """Requests per token subject: `rate_per_s` sustained, `burst` at once; beyond, 429."""

    rate_per_s: float = 10.0
    burst: int = 40
    max_subjects: int = 10_000  # bounded: past it the buckets start over (all full again)
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def allow(self, subject: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(subject)
        if bucket is None:
            if len(self._buckets) >= self.max_subjects:
                self._buckets.clear()
            bucket = self._buckets[subject] = TokenBucket(self.rate_per_s, self.burst, now=now)
        return bucket.try_take(now)


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: unauthenticated, permission_denied, "
                      "invalid_params, not_found, rate_limited, too_large, ...")
    message: str


class ErrorBody(BaseModel):
    """Every refusal and error of the admin API."""

    error: ErrorDetail


def _responses(result: type[BaseModel] | None, *, gated: bool) -> dict[int | str, Any]:
    """The OpenAPI answers of a route: its method's result model and the
    error body for each status the gate or the method may answer with."""
    ok: dict[str, Any] = {"description": "the control method's result"}
    if result is not None:
        ok["model"] = result
    errors = {400: "a body that is not a JSON object, or params the method refuses",
              401: "no valid credential", 403: "the credential's role may not call this",
              404: "what the params name does not exist", 413: "the body is too large",
              422: "params that do not fit the method's model",
              429: "over the rate limit (Retry-After)",
              503: "a part this daemon has not configured, or the store is unreachable"}
    if not gated:
        del errors[403]
    return {200: ok, **{status: {"model": ErrorBody, "description": what}
                        for status, what in errors.items()}}


def http_status(err: ReautodError) -> int:
    """The HTTP status of one of our errors (500 for a kind with no status of its own)."""
    for kind, status in ((AuthenticationError, 401), (PermissionDeniedError, 403),
                         (NotFoundError, 404), (ValidationError, 400), (OverloadedError, 429),
                         (UnavailableError, 503)):
        if isinstance(err, kind):
            return status
    return 500


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = ({"WWW-Authenticate": "Bearer"} if status == 401
               else {"Retry-After": "1"} if status == 429 else None)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=headers)


def refresh_rate_limit() -> RateLimit:
    """Refresh exchanges per client address: guessing at refresh tokens is slow."""
    return RateLimit(rate_per_s=1.0, burst=10)


def admin_router(authority: Credentials, methods: Mapping[str, Method],
                 auditor: MethodAuditor, rate_limit: RateLimit | None = None,
                 refresh_limit: RateLimit | None = None) -> APIRouter:
    """The /api/v1 routes whose control methods this daemon has (a part that is not running,
    telephony without Twilio for instance, still has its methods: they say what is missing),
    and the refresh exchange."""
    router = APIRouter(prefix=PREFIX)
    limit = rate_limit or RateLimit()
    router.add_api_route(
        REFRESH.path, _refresh_endpoint(authority, auditor, refresh_limit or refresh_rate_limit()),
        methods=[REFRESH.verb], name=REFRESH.method,
        summary="a new token and refresh token for a refresh token (spent by the exchange)",
        responses=_responses(TokenResult, gated=False),
        openapi_extra=operation_extra(REFRESH.verb, REFRESH.path, RefreshParams, REFRESH.method,
                                      bearer=False))
    for route in ROUTES:
        method = methods.get(route.method)
        if method is None:
            log.debug("admin API: %s %s not served (no method %s)", route.verb, route.path,
                      route.method)
            continue
        router.add_api_route(route.path, _endpoint(route, method, authority, auditor, limit),
                             methods=[route.verb], name=route.method,
                             summary=method.summary or route.method,
                             dependencies=[Depends(BEARER)],
                             responses=_responses(method.result, gated=True),
                             openapi_extra=operation_extra(route.verb, route.path, method.params,
                                                           route.method))
    return router


def _endpoint(route: Route, method: Method, authority: Authenticator,
              auditor: MethodAuditor, limit: RateLimit) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return _error(413, "too_large", f"the body may be at most {MAX_BODY_BYTES} bytes")
        client = request.client.host if request.client else "unknown"
        try:
            principal = await _authenticate(request, authority, f"admin API from {client}")
        except ReautodError as err:  # 401, or 503 when the credentials cannot be checked
            return _error(http_status(err), err.code, err.message)
        if not limit.allow(principal.subject):
            return _error(429, "rate_limited", f"{principal.subject} is over "
                          f"{limit.rate_per_s:g} requests per second")
        if not any(principal.may(p) for p in route.allowed):
            return _error(403, "permission_denied",
                          f"{principal.subject} ({principal.role}) may not {route.method}")
        params = await _params(request, route.verb, method.params)
        if isinstance(params, Response):
            return params
        return await _run(auditor, method, params, principal)

    return endpoint


def _refresh_endpoint(authority: Credentials, auditor: MethodAuditor,
                      limit: RateLimit) -> Callable[[Request], Any]:
    method = Method(REFRESH.method, authority.refresh, RefreshParams, changes_state=True,
                    result=TokenResult)

    async def endpoint(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        if not limit.allow(f"refresh from {client}"):
            return _error(429, "rate_limited", f"{client} is over {limit.rate_per_s:g} "
                          "refresh exchanges per second")
        if int(request.headers.get("content-length") or 0) > MAX_REFRESH_BODY_BYTES:
            return _error(413, "too_large",
                          f"the body may be at most {MAX_REFRESH_BODY_BYTES} bytes")
        params = await _params(request, REFRESH.verb, RefreshParams)
        if isinstance(params, Response):
            return params
        assert isinstance(params, RefreshParams)
        try:
            principal = await authority.refresh_holder(params.refresh_token,
                                                       f"admin API from {client}")
        except ReautodError as err:  # 401, or 503 when the credentials cannot be checked
            return _error(http_status(err), err.code, err.message)
        return await _run(auditor, method, params, principal)

    return endpoint


async def _params(request: Request, verb: str, model: type[BaseModel]) -> BaseModel | Response:
    """The request's params as `model`, or the 400/422 answer saying what is wrong."""
    try:
        return model.model_validate(await _raw_params(request, verb))
    except PydanticValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                             for e in err.errors())
        return _error(422, "invalid_params", problems)
    except ValidationError as err:
        return _error(400, err.code, err.message)


async def _run(auditor: MethodAuditor, method: Method, params: BaseModel,
               principal: Principal) -> Response:
    try:
        result = method.checked(await auditor.run_method(
            method.name, params, method.handler, principal, changes_state=method.changes_state))
    except ReautodError as err:
        return _error(http_status(err), err.code, err.message)
    # typed results (pydantic models) in the same JSON form as on the control socket
    return Response(encode_result(result), media_type="application/json")


async def _authenticate(request: Request, authority: Authenticator, origin: str) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("a bearer token or API key is required "
                                  "(reautoctl token create)")
    return await authority.authenticate(token.strip(), origin)


async def _raw_params(request: Request, verb: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if verb == "GET":
        raw.update(request.query_params)
    else:
        body = await request.body()
        if body.strip():
            try:
                data = await request.json()
            except ValueError as err:
                raise ValidationError("the body is not JSON") from err
            if not isinstance(data, dict):
                raise ValidationError("the body is a JSON object of the method's params")
            raw.update(data)
    raw.update(request.path_params)  # the path wins over the body
    return raw
