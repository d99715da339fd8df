"""Who a subject request is about, kept only as a salted hash once erased.

A phone number is hashed with HMAC-SHA256 under a secret salt: the database then holds no
number, and a copy of the database alone cannot test candidate numbers (there are few enough
of them to try all, so an unsalted or public-salt hash would not hide anything).

The salt comes from the `erasure_salt` credential when there is one (base64, at least 16
bytes; every daemon sharing one database needs the same), else from
`<state_dir>/privacy/erasure.salt`, generated once (32 random bytes, mode 0600). Back it up
with the database: without it, erased numbers can no longer be recognised. Each erasure row
stores the salt's public id, and `ErasureRegister.check_salt` refuses to run with a different
salt than the rows were written with, so a lost salt is noticed, never silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ConfigError
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import check_e164, table

SALT_BYTES = 32
MIN_SALT_BYTES = 16
SALT_FILE = Path("privacy") / "erasure.salt"
CREDENTIAL = "erasure_salt"

erased_subjects = table(m.ErasedSubject)


class SubjectHasher:
    """HMAC-SHA256 of an E.164 number under the salt; `salt_id` names the salt publicly."""

    def __init__(self, salt: bytes) -> None:
        if len(salt) < MIN_SALT_BYTES:
            raise ConfigError(f"the erasure salt must be at least {MIN_SALT_BYTES} bytes",
                              [(CREDENTIAL, "too short")])
        self._salt = salt
        self.salt_id = hmac.new(salt, b"reautod erasure salt id", hashlib.sha256).hexdigest()[:16]

    def hash(self, phone_e164: str) -> str:
        check_e164(phone_e164)
        return hmac.new(self._salt, phone_e164.encode("ascii"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"SubjectHasher(salt_id={self.salt_id})"


def load_salt(state_dir: Path, credential: str | None = None) -> bytes:
    """The salt from the credential text, else from the state directory (made once)."""
    if credential:
        try:
            salt = base64.b64decode(credential.strip(), validate=True)
        except binascii.Error as err:
            raise ConfigError("the erasure_salt credential is not base64",
                              [(CREDENTIAL, "not base64")]) from err
        return salt
    path = state_dir / SALT_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(SALT_BYTES))
        f.flush()
        os.fsync(f.fileno())
    return path.read_bytes()


class ErasureRegister:
    """The erased numbers, for the import and dial paths: `is_erased`, `erased_among`."""

    def __init__(self, db: Database, hasher: SubjectHasher) -> None:
        self.db = db
        self.hasher = hasher

    async def check_salt(self) -> None:
        """ConfigError when erasures were recorded under another salt (run at start-up)."""

        async def work(conn: AsyncConnection) -> set[str]:
            return set((await conn.execute(
                select(erased_subjects.c.salt_id).distinct())).scalars())

        others = await self.db.read(work) - {self.hasher.salt_id}
        if others:
            raise ConfigError(
                "the erasure salt differs from the one erased numbers were recorded with: they "
                "would be dialed again",
                [(CREDENTIAL, f"expected salt id {', '.join(sorted(others))}, this box has "
                              f"{self.hasher.salt_id}; restore the erasure_salt credential or "
                              f"<state_dir>/{SALT_FILE}")])

    async def is_erased(self, phone_e164: str) -> bool:
        return bool(await self.erased_among([phone_e164]))

    async def erased_among(self, phones: Iterable[str]) -> set[str]:
        """Which of `phones` (E.164) were erased; one query per thousand numbers."""
        by_hash = {self.hasher.hash(p): p for p in phones}
        found: set[str] = set()
        hashes = list(by_hash)
        for start in range(0, len(hashes), 1000):
            batch = hashes[start:start + 1000]

            async def work(conn: AsyncConnection, batch: list[str] = batch) -> list[str]:
                rows = await conn.execute(select(erased_subjects.c.subject_hash)
                                          .where(erased_subjects.c.subject_hash.in_(batch)))
                return list(rows.scalars())

            found.update(by_hash[h] for h in await self.db.read(work))
        return found
