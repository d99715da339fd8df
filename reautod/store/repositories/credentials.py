"""The admin API's credentials: tokens by jti, API keys and refresh tokens by the hash of their
secret; a refresh token's family (the tokens it was rotated into and the tokens they made)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import NotFoundError, ValidationError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import CredentialKind
from reautod.store.repositories._base import check_limit, table, to_dataclass

credentials = table(m.ApiCredential)


@dataclass(frozen=True)
class CredentialRow:
    id: str
    kind: str
    subject: str
    role: str
    secret_sha256: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    family: str | None = None
    spent_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class CredentialRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, row: CredentialRow) -> None:
        hashed = row.kind in (CredentialKind.API_KEY, CredentialKind.REFRESH)
        if row.kind not in set(CredentialKind) or hashed != (row.secret_sha256 is not None):
            raise ValidationError("an API key or refresh token holds its secret's hash; "
                                  "a token holds none")

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(insert(credentials).values(**asdict(row)))

        await self.db.transaction(work)

    async def get(self, credential_id: str) -> CredentialRow | None:
        async def work(conn: AsyncConnection) -> CredentialRow | None:
            found = (await conn.execute(
                select(credentials).where(credentials.c.id == credential_id))).first()
            return to_dataclass(CredentialRow, found) if found is not None else None

        return await self.db.read(work)

    async def recent(self, *, live_at: datetime | None = None,
                     limit: int = 200) -> list[CredentialRow]:
        """Newest first; with `live_at`, only those neither revoked nor expired then."""
        check_limit(limit, 1000)

        async def work(conn: AsyncConnection) -> list[CredentialRow]:
            query = select(credentials).order_by(credentials.c.created_at.desc()).limit(limit)
            if live_at is not None:
                query = query.where(credentials.c.revoked_at.is_(None), or_(
                    credentials.c.expires_at.is_(None), credentials.c.expires_at > live_at))
            return [to_dataclass(CredentialRow, r) for r in await conn.execute(query)]

        return await self.db.read(work)

    async def revoke(self, credential_id: str, *, by: str, at: datetime) -> CredentialRow:
        """Revoke once (a second revocation keeps the first's time and author); a refresh
        token's whole family with it (the tokens it was rotated into and those they made)."""
        row = await self.get(credential_id)
        if row is None:
            raise NotFoundError(f"no token or API key {credential_id}")
        if row.kind == CredentialKind.REFRESH and row.family is not None:
            await self.revoke_family(row.family, by=by, at=at)
        else:
            async def work(conn: AsyncConnection) -> None:
                await conn.execute(update(credentials).where(
                    credentials.c.id == credential_id, credentials.c.revoked_at.is_(None),
                ).values(revoked_at=at, revoked_by=by))

            await self.db.transaction(work)
        return await self.get(credential_id) or row

    async def revoke_family(self, family: str, *, by: str, at: datetime) -> int:
        """Revoke every live credential of a refresh family; how many were live."""
        async def work(conn: AsyncConnection) -> int:
            done = await conn.execute(update(credentials).where(
                credentials.c.family == family, credentials.c.revoked_at.is_(None),
            ).values(revoked_at=at, revoked_by=by))
            return int(done.rowcount or 0)

        return await self.db.transaction(work)

    async def spend(self, credential_id: str, *, at: datetime,
                    successors: tuple[CredentialRow, ...]) -> bool:
        """Mark a live refresh token spent and store what it is exchanged for, in one
        transaction; False (nothing stored) when it was already spent or revoked (a reuse, or
        a second exchange racing this one)."""
        async def work(conn: AsyncConnection) -> bool:
            done = await conn.execute(update(credentials).where(
                credentials.c.id == credential_id, credentials.c.spent_at.is_(None),
                credentials.c.revoked_at.is_(None),
            ).values(spent_at=at))
            if done.rowcount != 1:
                return False
            for row in successors:
                await conn.execute(insert(credentials).values(**asdict(row)))
            return True

        return await self.db.transaction(work)
