"""The admin API's credentials: JWTs revocable one by one, and API keys for machine clients.

- A token (`token.create`) is a JWT signed with the jwt_secret credential; its jti is stored
  (`api_credentials`), so a token is valid only while its row says it is not revoked. A token
  whose row is missing (made before this, or on a box with another database) is refused.
- An API key (`token.create_key`) is `rk_<id>_<secret>`: 16 hex characters naming its row, then
  32 random bytes (base64url). Only the SHA-256 of the secret is stored: 256 random bits need no
  slow hash, and a stolen database does not hold a usable key. Keys live until revoked, or until
  their optional expiry.
- A refresh token (`token.create` with `refresh_days`) is `rt_<id>_<secret>`, stored hashed like
  a key, and good for one exchange at `POST /api/v1/token/refresh` (`refresh`): it is spent, and
  a new token (REFRESHED_TOKEN_MINUTES) and a new refresh token (same family, same end) are
  stored in the same transaction. Presenting a spent one again is a reuse (a stolen copy, or the
  thief got there first): its whole family is revoked, the live refresh token and the tokens
  made from the family included. The family lives at most as long as the first refresh token.
- `token.list` and `token.revoke` see every kind; revoking takes effect on the next request
  (every request reads the row: a revocation holds across daemons sharing the database), and
  revoking a refresh token revokes its family.

Every credential acts as `token:<subject>` or `key:<subject>` with its role; making and revoking
them is audited like every state-changing method.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from reautod.api.admin import AuthenticationError, TokenAuthority
from reautod.errors import ReautodError, UnavailableError
from reautod.methods import Method
from reautod.security.principal import Permission, Principal, Role, require
from reautod.security.results import (
    REFRESHED_TOKEN_MINUTES,
    ApiKeyParams,
    CredentialInfo,
    CredentialList,
    RefreshParams,
    TokenListParams,
    TokenParams,
    TokenResult,
    TokenRevokeParams,
)
from reautod.store.database import Database
from reautod.store.enums import CredentialKind
from reautod.store.repositories.credentials import CredentialRepository, CredentialRow
from reautod.store.types import utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "rk_"
REFRESH_PREFIX = "rt_"
_KEY = re.compile(r"^rk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_REFRESH = re.compile(r"^rt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


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
        if credential.startswith(REFRESH_PREFIX):
            raise AuthenticationError("a refresh token only buys a new token "
                                      "(POST /api/v1/token/refresh)")
        claims = self.require_api().verify(credential)
        row = await self._row(claims.jti) if claims.jti is not None else None
        if row is None or row.kind != CredentialKind.TOKEN:
            raise AuthenticationError("unknown token: make one with reautoctl token create")
        self._check_live(row)
        return Principal(f"token:{claims.subject}", claims.role, origin)

    async def _key(self, credential: str, origin: str) -> Principal:
        row = await self._hashed(credential, _KEY, CredentialKind.API_KEY)
        if row is None:
            raise AuthenticationError("unknown API key")
        self._check_live(row)
        return Principal(f"key:{row.subject}", Role(row.role), origin)

    async def _hashed(self, credential: str, shape: re.Pattern[str],
                      kind: CredentialKind) -> CredentialRow | None:
        """The row of a key or refresh token whose secret hashes to the stored hash."""
        found = shape.match(credential)
        row = await self._row(found.group(1)) if found is not None else None
        if (found is None or row is None or row.kind != kind
                or not hmac.compare_digest(row.secret_sha256 or "", _digest(found.group(2)))):
            return None
        return row

    async def refresh_holder(self, refresh_token: str, origin: str) -> Principal:
        """Who presents this refresh token (as `token:<subject>`, its role), its secret checked,
        spent or not: `refresh` runs as them, so a reuse is audited under their name too."""
        self.require_api()
        row = await self._hashed(refresh_token, _REFRESH, CredentialKind.REFRESH)
        if row is None:
            raise AuthenticationError("unknown refresh token")
        return Principal(f"token:{row.subject}", Role(row.role), origin)

    async def refresh(self, params: RefreshParams) -> TokenResult:
        """Exchange a refresh token once for a new token and refresh token (module doc)."""
        row = await self._hashed(params.refresh_token, _REFRESH, CredentialKind.REFRESH)
        if row is None:
            raise AuthenticationError("unknown refresh token")
        family = row.family or row.id
        if row.spent_at is None:
            self._check_live(row)
            ttl = timedelta(minutes=REFRESHED_TOKEN_MINUTES)
            if row.expires_at is not None:  # never past the family's end
                ttl = min(ttl, row.expires_at - self._clock())
            by = f"refresh:{row.id}"
            token, token_row = self._token(row.subject, Role(row.role), ttl, by, family)
            refresh, refresh_row = self._refresh(row.subject, Role(row.role), row.expires_at,
                                                 by, family)
            if await self.repository.spend(row.id, at=self._clock(),
                                           successors=(token_row, refresh_row)):
                return _made(token, token_row, refresh, refresh_row)
        revoked = await self.repository.revoke_family(family, by=f"reuse of {row.id}",
                                                       at=self._clock())
        log.warning("admin API: refresh token %s of %s used twice; family %s revoked "
                    "(%d live credentials)", row.id, row.subject, family, revoked)
        raise AuthenticationError(f"refresh token {row.id} was already used: every token of "
                                  "its family is revoked (make a new one: token create)")

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
        token, row = self._token(subject, role, ttl, by, None)
        await self.repository.add(row)
        return token, row

    async def issue_with_refresh(self, subject: str, role: Role, ttl: timedelta,
                                 refresh_days: int, by: str) -> TokenResult:
        """A token and a refresh token of a new family (the refresh token's id)."""
        refresh, refresh_row = self._refresh(subject, role,
                                             self._clock() + timedelta(days=refresh_days), by,
                                             None)
        token, token_row = self._token(subject, role, ttl, by, refresh_row.family)
        await self.repository.add(refresh_row)
        await self.repository.add(token_row)
        return _made(token, token_row, refresh, refresh_row)

    def _token(self, subject: str, role: Role, ttl: timedelta, by: str,
               family: str | None) -> tuple[str, CredentialRow]:
        jti = secrets.token_hex(16)
        issued = self.require_api().issue(subject, role, ttl, jti)
        return issued.token, CredentialRow(jti, CredentialKind.TOKEN.value, subject, role.value,
                                           None, self._clock(), by, issued.expires_at, None,
                                           None, family)

    def _refresh(self, subject: str, role: Role, expires: datetime | None, by: str,
                 family: str | None) -> tuple[str, CredentialRow]:
        refresh_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row = CredentialRow(refresh_id, CredentialKind.REFRESH.value, subject, role.value,
                            _digest(secret), self._clock(), by, expires, None, None,
                            family or refresh_id)
        return f"{REFRESH_PREFIX}{refresh_id}_{secret}", row

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
        ttl = timedelta(minutes=params.ttl_minutes)
        if params.refresh_days is not None:
            return await credentials.issue_with_refresh(params.subject, params.role, ttl,
                                                        params.refresh_days, by)
        token, row = await credentials.issue_token(params.subject, params.role, ttl, by)
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
               summary="an admin API bearer token (JWT) for a subject and role, and a "
               "refresh token with refresh_days"),
        Method("token.create_key", create_key, ApiKeyParams, changes_state=True,
               summary="an admin API key for a machine client (stored hashed)"),
        Method("token.list", listing, TokenListParams,
               summary="the admin API's tokens and keys (live ones, or --all)"),
        Method("token.revoke", revoke, TokenRevokeParams, changes_state=True,
               summary="revoke one token (by jti), API key (by id) or refresh token (by id, "
               "with its family) now"),
    ]


def _info(row: CredentialRow) -> CredentialInfo:
    return CredentialInfo(id=row.id, kind=CredentialKind(row.kind), subject=row.subject,
                          role=Role(row.role), created_at=row.created_at,
                          created_by=row.created_by, expires_at=row.expires_at,
                          revoked_at=row.revoked_at, revoked_by=row.revoked_by,
                          family=row.family, spent_at=row.spent_at)


def _made(secret: str, row: CredentialRow, refresh: str | None = None,
          refresh_row: CredentialRow | None = None) -> TokenResult:
    return TokenResult(token=secret, id=row.id, kind=CredentialKind(row.kind),
                       subject=row.subject, role=Role(row.role), expires_at=row.expires_at,
                       refresh_token=refresh,
                       refresh_id=refresh_row.id if refresh_row is not None else None,
                       refresh_expires_at=refresh_row.expires_at if refresh_row else None)

