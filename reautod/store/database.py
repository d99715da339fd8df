"""The database handle: engine, pool, transactions with bounded retries, schema status/migration.

Postgres (psycopg 3 async) is the system of record; SQLite (aiosqlite) is the embedded default.
Both are reached through the same `Database` so repositories never branch on the backend except
through the dialect-aware helpers in `reautod.store.sql`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import util as alembic_util
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from reautod.config import DatabaseSettings
from reautod.errors import StoreError, UnavailableError, ValidationError
from reautod.resilience.service import Resilience
from reautod.resilience.service import is_transient as resilient_transient
from reautod.store import schema
from reautod.store.schema import RevisionInfo, SchemaStatus

log = logging.getLogger(__name__)

T = TypeVar("T")



def normalize_url(url: str) -> URL:
    """Parse a database URL and pick the async driver we ship; refuse anything else clearly."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as err:
        raise ValidationError(f"database URL is not valid: {err}") from err
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg", "psycopg_async"):
            raise ValidationError(f"database driver {driver!r} is not supported: use postgresql+psycopg")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise ValidationError(f"database driver {driver!r} is not supported: use sqlite+aiosqlite")
        if not parsed.database or parsed.database == ":memory:":
            raise ValidationError("SQLite needs a file path (sqlite+aiosqlite:////path/reautod.db)")
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValidationError(f"database backend {backend!r} is not supported (postgresql or sqlite)")


def is_transient(err: BaseException) -> bool:
    """A lost or refused connection, a pool timeout, a busy SQLite: worth retrying the write."""
    if isinstance(err, sa_exc.DBAPIError):
        if err.connection_invalidated:
            return True
        return isinstance(err, (sa_exc.OperationalError, sa_exc.InterfaceError))
    return isinstance(err, (sa_exc.TimeoutError, ConnectionError, TimeoutError))


class _ConflictError(StoreError):
    """A transaction lost to another (serialization, deadlock, lock wait): retried, but the
    database is up, so it does not count against the circuit."""


def _is_conflict(err: BaseException) -> bool:
    """A Postgres error with a SQLSTATE outside connection trouble (class 08, 57P0x)."""
    state = getattr(getattr(err, "orig", None), "sqlstate", None)
    return isinstance(state, str) and not state.startswith(("08", "57P0"))


class Database:
    """One engine and pool per process; `transaction` runs a unit of work with bounded retries."""

    def __init__(self, url: str, settings: DatabaseSettings, *,
                 resilience: Resilience | None = None) -> None:
        self.url = normalize_url(url)
        self.settings = settings
        # transactions go through the database circuit (Postgres) and its retry policy; while
        # the circuit is open they fail at once, and the write-behind spools without waiting
        self.resilience = resilience or Resilience()
        self._engine: AsyncEngine | None = None

    @property
    def backend(self) -> str:
        return "sqlite" if self.url.drivername.startswith("sqlite") else "postgres"

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise UnavailableError("the database is not open")
        return self._engine

    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    async def open(self) -> None:
        """Create the engine and check the database answers (UnavailableError if not)."""
        if self._engine is not None:
            return
        if self.backend == "sqlite":
            path = Path(str(self.url.database))
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        self._engine = self._create_engine(foreign_keys=True)
        try:
            await self.ping()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()

    def _create_engine(self, *, foreign_keys: bool, pooled: bool = True) -> AsyncEngine:
        s = self.settings
        if self.backend == "postgres":
            kwargs: dict[str, Any] = {
                "connect_args": {"connect_timeout": max(1, round(s.connect_timeout_s))},
                "pool_pre_ping": True,
            }
            if pooled:
                kwargs.update(
                    pool_size=s.pool_size, max_overflow=s.max_overflow, pool_timeout=s.pool_timeout_s
                )
            else:
                kwargs["poolclass"] = NullPool
            return create_async_engine(self.url, **kwargs)
        engine = create_async_engine(
            self.url,
            connect_args={"timeout": s.connect_timeout_s},
            poolclass=None if pooled else NullPool,
        )
        _configure_sqlite(engine, foreign_keys=foreign_keys, busy_timeout_s=s.pool_timeout_s)
        return engine

    async def ping(self) -> None:
        """Round-trip `SELECT 1`; UnavailableError naming the database if it does not answer."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (sa_exc.SQLAlchemyError, OSError) as err:
            raise UnavailableError(
                f"database {self.display_url()} is unreachable: {_short(err)}"
            ) from err

    async def transaction(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        attempts: int | None = None,
    ) -> T:
        """Run `work` in one transaction; on a lost connection retry it (bounded, backing off).

        Work must be idempotent (our writes are upserts keyed on client ids) so a retry after an
        unacknowledged commit changes nothing. Exhausted retries raise UnavailableError; a
        rejected statement (constraint, bad data) raises StoreError at once.
        """
        async def once() -> T:
            try:
                async with self.engine.begin() as conn:
                    return await work(conn)
            except (sa_exc.SQLAlchemyError, OSError) as err:
                if not is_transient(err):
                    raise StoreError(f"database rejected the write: {_short(err)}") from err
                if _is_conflict(err):
                    raise _ConflictError(f"database conflict: {_short(err)}") from err
                raise UnavailableError(
                    f"database {self.display_url()} is unreachable: {_short(err)}") from err

        def retryable(err: BaseException) -> bool:
            return isinstance(err, _ConflictError) or resilient_transient(err)

        retries = self.settings.retry_attempts if attempts is None else attempts
        try:
            return await self.resilience.call("database", once, retry_if=retryable,
                                              retries=retries,
                                              circuit=self.backend == "postgres")
        except _ConflictError as err:  # retries spent: as before, the caller sees "unavailable"
            raise UnavailableError(err.message) from err

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run read-only `work`; retried like `transaction`."""
        return await self.transaction(work)

    # Schema: Alembic runs on a connection of its own engine (SQLite: foreign keys off, as batch
    # migrations recreate tables and a DROP with foreign keys on would cascade deletes).

    async def _run_schema(self, fn: Callable[[Connection], T]) -> T:
        engine = self._create_engine(foreign_keys=False, pooled=False)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(fn)
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as err:
            raise UnavailableError(
                f"database {self.display_url()} is unreachable: {_short(err)}"
            ) from err
        except alembic_util.AutogenerateDiffsDetected as err:
            raise StoreError(f"models and migrations differ: {err}", code="schema_drift") from err
        except alembic_util.CommandError as err:
            raise ValidationError(f"migration refused: {err}") from err
        finally:
            await engine.dispose()

    async def schema_status(self) -> SchemaStatus:
        return await self._run_schema(schema.status)

    async def upgrade(self, revision: str = "head") -> SchemaStatus:
        log.info("migrating database %s to %s", self.display_url(), revision)
        await self._run_schema(lambda c: schema.upgrade(c, revision))
        return await self.schema_status()

    async def downgrade(self, revision: str) -> SchemaStatus:
        log.warning("downgrading database %s to %s", self.display_url(), revision)
        await self._run_schema(lambda c: schema.downgrade(c, revision))
        return await self.schema_status()

    async def history(self) -> list[RevisionInfo]:
        return await self._run_schema(schema.history)

    async def check_drift(self) -> None:
        """StoreError(code="schema_drift") if the models and migrations disagree (`alembic check`)."""
        await self._run_schema(schema.check)

    async def ensure_schema(self, *, auto_migrate: bool) -> SchemaStatus:
        """The start-up rule: up to date, or migrate (auto_migrate / embedded SQLite), or refuse."""
        status = await self.schema_status()
        if status.up_to_date:
            return status
        known = {r.revision for r in await self.history()}
        if status.current is not None and status.current not in known:
            raise UnavailableError(
                f"database is at revision {status.current}, which this reautod does not know "
                f"(its newest is {status.head}): upgrade reautod"
            )
        if auto_migrate or self.backend == "sqlite":
            return await self.upgrade("head")
        raise UnavailableError(
            f"database is at {status.current or 'an empty schema'}, code needs {status.head}: "
            "run `reautoctl db upgrade`"
        )


def _configure_sqlite(engine: AsyncEngine, *, foreign_keys: bool, busy_timeout_s: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN IMMEDIATE can be used below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: two deferred transactions that both read then write
        # would otherwise deadlock and fail with SQLITE_BUSY instead of waiting.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _short(err: BaseException) -> str:
    msg = str(getattr(err, "orig", None) or err).strip().splitlines()
    return msg[0] if msg else type(err).__name__
