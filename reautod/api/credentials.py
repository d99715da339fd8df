"""The admin API's credentials: JWTs revocable one by one, and API keys for machine clients.

- A token (`token.create`) is a JWT signed with the jwt_secret credential; its jti is stored
  (`api_credentials`), so a token is valid only while its row says it is not revoked. A token
  whose row is missing (made before this, or on a box with another database) is refused.
- An API key (`token.create_key`) is `rk_<id>_<secret>`: 16 hex characters naming its row, then
  32 random bytes (base64url). Only the SHA-256 of the secret is stored: 256 random bits need no
  slow hash, and a stolen database does not hold a usable key. Keys live until revoked, or until
  their optional expiry.
- `token.list` and `token.revoke` see both kinds; revoking takes effect on the next request
  (every request reads the row: a revocation holds across daemons sharing the database).

Every credential acts as `token:<subject>` or `key:<subject>` with its role; making and revoking
them is audited like every state-changing method.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from reautod.api.admin import AuthenticationError, TokenAuthority
from reautod.errors import ReautodError, UnavailableError
from reautod.methods import Method
from reautod.security.principal import Permission, Principal, Role, require
from reautod.security.results import (
    ApiKeyParams,
    CredentialInfo,
    CredentialList,
    TokenListParams,
    TokenParams,
    TokenResult,
    TokenRevokeParams,
)
from reautod.store.database import Database
from reautod.store.enums import CredentialKind
from reautod.store.repositories.credentials import CredentialRepository, CredentialRow
from reautod.store.types import utcnow

KEY_PREFIX = "rk_"
_KEY = re.compile(r"^rk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiCredentials:
    """Makes, checks, lists and revokes the API's credentials (the admin router's
    `Authenticator`); `authority` None: no jwt_secret, so the API is off."""

    def __init__(self, repository: CredentialRepository, authority: TokenAuthority | None, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.repository = repository
        self.authority = authority
        self._clock = clock

    @classmethod
    def build(cls, db: Database, jwt_secret: str | None) -> ApiCredentials:
        """The daemon's: the credentials in its database, tokens signed with `jwt_secret`."""
        return cls(CredentialRepository(db), TokenAuthority(jwt_secret) if jwt_secret else None)

    def require_api(self) -> TokenAuthority:
        """The token authority; UnavailableError when the API is off (no jwt_secret)."""
        if self.authority is None:
            raise UnavailableError("the admin API is off: set the jwt_secret credential "
                                   "(openssl rand -hex 32)")
        return self.authority

    async def authenticate(self, credential: str, origin: str) -> Principal:
        if credential.startswith(KEY_PREFIX):
            return await self._key(credential, origin)
        claims = self.require_api().verify(credential)
        row = await self._row(claims.jti) if claims.jti is not None else None
        if row is None or row.kind != CredentialKind.TOKEN:
            raise AuthenticationError("unknown token: make one with reautoctl token create")
        self._check_live(row)
        return Principal(f"token:{claims.subject}", claims.role, origin)

    async def _key(self, credential: str, origin: str) -> Principal:
        found = _KEY.match(credential)
        row = await self._row(found.group(1)) if found is not None else None
        if (found is None or row is None or row.kind != CredentialKind.API_KEY
                or not hmac.compare_digest(row.secret_sha256 or "", _digest(found.group(2)))):
            raise AuthenticationError("unknown API key")
        self._check_live(row)
        return Principal(f"key:{row.subject}", Role(row.role), origin)

    async def _row(self, credential_id: str) -> CredentialRow | None:
        try:
            return await self.repository.get(credential_id)
        except ReautodError as err:  # the store is down: say so, not "unauthenticated"
            raise UnavailableError(f"cannot check credentials now ({err.code})") from err

    def _check_live(self, row: CredentialRow) -> None:
        if row.revoked_at is not None:
            raise AuthenticationError(f"{row.kind} {row.id} was revoked")
        if row.expires_at is not None and row.expires_at <= self._clock():
            raise AuthenticationError(f"{row.kind} {row.id} has expired")

    async def issue_token(self, subject: str, role: Role, ttl: timedelta,
                          by: str) -> tuple[str, CredentialRow]:
        jti = secrets.token_hex(16)
        issued = self.require_api().issue(subject, role, ttl, jti)
        row = CredentialRow(jti, CredentialKind.TOKEN.value, subject, role.value, None,
                            self._clock(), by, issued.expires_at, None, None)
        await self.repository.add(row)
        return issued.token, row

    async def create_key(self, subject: str, role: Role, expires_days: int | None,
                         by: str) -> tuple[str, CredentialRow]:
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + timedelta(days=expires_days) if expires_days is not None else None
        row = CredentialRow(key_id, CredentialKind.API_KEY.value, subject, role.value,
                            _digest(secret), now, by, expires, None, None)
        await self.repository.add(row)
        return f"{KEY_PREFIX}{key_id}_{secret}", row

    async def listing(self, *, everything: bool, limit: int) -> list[CredentialRow]:
        """Newest first: the live ones, or `everything` (revoked and expired too)."""
        return await self.repository.recent(live_at=None if everything else self._clock(),
                                            limit=limit)

    async def revoke(self, credential_id: str, by: str) -> CredentialRow:
        return await self.repository.revoke(credential_id, by=by, at=self._clock())


# -- control methods: reautoctl token create|list|revoke --------------------------------------

def token_methods(credentials: ApiCredentials) -> list[Method]:
    async def create(params: TokenParams) -> TokenResult:
        by = require(Permission.TOKENS).subject
        token, row = await credentials.issue_token(
            params.subject, params.role, timedelta(minutes=params.ttl_minutes), by)
        return _made(token, row)

    async def create_key(params: ApiKeyParams) -> TokenResult:
        by = require(Permission.TOKENS).subject
        credentials.require_api()  # keys serve the same API: off without the jwt_secret
        key, row = await credentials.create_key(params.subject, params.role,
                                                params.expires_days, by)
        return _made(key, row)

    async def listing(params: TokenListParams) -> CredentialList:
        require(Permission.TOKENS)
        rows = await credentials.listing(everything=params.all, limit=params.limit)
        return CredentialList(credentials=[_info(r) for r in rows])

    async def revoke(params: TokenRevokeParams) -> CredentialInfo:
        by = require(Permission.TOKENS).subject
        return _info(await credentials.revoke(params.credential_id, by))

    return [
        Method("token.create", create, TokenParams, changes_state=True,
               summary="an admin API bearer token (JWT) for a subject and role"),
        Method("token.create_key", create_key, ApiKeyParams, changes_state=True,
               summary="an admin API key for a machine client (stored hashed)"),
        Method("token.list", listing, TokenListParams,
               summary="the admin API's tokens and keys (live ones, or --all)"),
        Method("token.revoke", revoke, TokenRevokeParams, changes_state=True,
               summary="revoke one token (by jti) or API key (by id) now"),
    ]


def _info(row: CredentialRow) -> CredentialInfo:
    return CredentialInfo(id=row.id, kind=CredentialKind(row.kind), subject=row.subject,
                          role=Role(row.role), created_at=row.created_at,
                          created_by=row.created_by, expires_at=row.expires_at,
                          revoked_at=row.revoked_at, revoked_by=row.revoked_by)


def _made(secret: str, row: CredentialRow) -> TokenResult:
    return TokenResult(token=secret, id=row.id, kind=CredentialKind(row.kind),
                       subject=row.subject, role=Role(row.role), expires_at=row.expires_at)

